/**
 * A chart on the page as a standalone SVG or PNG file. Charts are recharts <svg>s, canvases (the heatmaps) and HTML
 * around them (titles, legends, captions); the page's layout is taken as it stands: each piece is placed where the
 * browser drew it, SVG copied with its computed styles inlined (a file has no stylesheet), canvases as embedded PNG
 * images, text as <text>. The PNG is that SVG drawn on a canvas, so both files show the same thing.
 */

export type Piece =
  | { readonly kind: 'svg'; readonly x: number; readonly y: number; readonly w: number; readonly h: number; readonly markup: string; readonly viewBox?: string | null }
  | { readonly kind: 'image'; readonly x: number; readonly y: number; readonly w: number; readonly h: number; readonly href: string }
  | { readonly kind: 'rect'; readonly x: number; readonly y: number; readonly w: number; readonly h: number; readonly fill: string; readonly stops?: readonly string[] }
  | {
      readonly kind: 'text';
      readonly x: number;
      readonly y: number;
      readonly text: string;
      readonly font: { readonly family: string; readonly size: string; readonly weight: string; readonly style: string };
      readonly color: string;
      /** The width the page gave it: the file's fonts may differ, so the text is fitted to it. */
      readonly w?: number;
    };

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The colours of a left-to-right CSS gradient (the heatmap legends), or null for anything else. */
export function gradientStops(css: string): string[] | null {
  if (!/^linear-gradient\(\s*(to right|90deg)/.test(css)) return null;
  const stops = css.match(/(rgba?\([^)]*\)|#[0-9a-fA-F]{3,8})/g);
  return stops && stops.length >= 2 ? stops : null;
}

const r2 = (v: number): number => Math.round(v * 100) / 100;

/** One SVG document of `width` × `height` px (white background) holding the pieces in order. */
export function composeSvg(width: number, height: number, title: string, pieces: readonly Piece[]): string {
  const defs: string[] = [];
  const body: string[] = [];
  for (const p of pieces) {
    if (p.kind === 'svg') {
      // The legend's icons draw in their own coordinates (a viewBox): keep it, or they come out at full size.
      const vb = p.viewBox ? ` viewBox="${escapeXml(p.viewBox)}"` : '';
      body.push(`<svg x="${r2(p.x)}" y="${r2(p.y)}" width="${r2(p.w)}" height="${r2(p.h)}"${vb} overflow="visible">${innerOf(p.markup)}</svg>`);
    }
    else if (p.kind === 'image') body.push(`<image x="${r2(p.x)}" y="${r2(p.y)}" width="${r2(p.w)}" height="${r2(p.h)}" preserveAspectRatio="none" href="${escapeXml(p.href)}"/>`);
    else if (p.kind === 'rect') {
      let fill = escapeXml(p.fill);
      if (p.stops) {
        const id = `g${defs.length}`;
        const n = p.stops.length - 1;
        defs.push(`<linearGradient id="${id}" x1="0" x2="1" y1="0" y2="0">${p.stops.map((c, i) => `<stop offset="${r2(i / n)}" stop-color="${escapeXml(c)}"/>`).join('')}</linearGradient>`);
        fill = `url(#${id})`;
      }
      body.push(`<rect x="${r2(p.x)}" y="${r2(p.y)}" width="${r2(p.w)}" height="${r2(p.h)}" fill="${fill}"/>`);
    } else {
      // Font as attributes, not a style attribute: the page's Content-Security-Policy (style-src 'self') also governs the
      // SVG it draws as an image for the PNG.
      const f = p.font;
      body.push(
        `<text x="${r2(p.x)}" y="${r2(p.y)}"${p.w ? ` textLength="${r2(p.w)}" lengthAdjust="spacingAndGlyphs"` : ''} font-family="${escapeXml(f.family)}" font-size="${escapeXml(f.size)}" font-weight="${escapeXml(f.weight)}" font-style="${escapeXml(f.style)}" fill="${escapeXml(p.color)}" xml:space="preserve">${escapeXml(p.text)}</text>`,
      );
    }
  }
  const w = Math.ceil(width);
  const h = Math.ceil(height);
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">` +
    `<title>${escapeXml(title)}</title>${defs.length ? `<defs>${defs.join('')}</defs>` : ''}` +
    `<rect width="100%" height="100%" fill="#ffffff"/>${body.join('')}</svg>\n`
  );
}

/** A serialised <svg …>…</svg> without its outer element (its size and place come from the piece). */
function innerOf(markup: string): string {
  const open = markup.indexOf('>');
  const close = markup.lastIndexOf('</svg>');
  if (open < 0 || close < open || markup.slice(open - 1, open + 1) === '/>') return '';
  return markup.slice(open + 1, close);
}

/** File names from a chart's title: lower case, words joined by dashes. */
export function fileStem(title: string): string {
  return (
    title
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'chart'
  );
}

// ---- the browser side: read the page as drawn ------------------------------------------------------------------

const SVG_PROPS = [
  'fill', 'fill-opacity', 'stroke', 'stroke-width', 'stroke-dasharray', 'stroke-opacity', 'opacity',
  'font-size', 'font-family', 'font-weight', 'text-anchor', 'dominant-baseline',
] as const;

/**
 * An SVG element as markup with its computed presentation (fill, stroke, fonts…) written as attributes, since a file
 * has no stylesheet. Built as a string rather than by editing a clone: the page's Content-Security-Policy
 * (style-src 'self') refuses style attributes set or copied in the DOM.
 */
function svgMarkup(el: Element): string {
  const attrs = new Map<string, string>();
  for (const a of el.attributes) if (a.name !== 'style' && a.name !== 'tabindex') attrs.set(a.name === 'xlink:href' ? 'href' : a.name, a.value);
  const cs = getComputedStyle(el);
  for (const p of SVG_PROPS) {
    const v = cs.getPropertyValue(p);
    if (v) attrs.set(p, v);
  }
  if (el.parentElement === null || !(el.parentElement instanceof SVGElement)) attrs.set('xmlns', 'http://www.w3.org/2000/svg');
  let inner = '';
  for (const c of el.childNodes) {
    if (c.nodeType === Node.TEXT_NODE) inner += escapeXml((c as Text).data);
    else if (c instanceof Element) inner += svgMarkup(c);
  }
  const open = `<${el.localName}${[...attrs].map(([k, v]) => ` ${k}="${escapeXml(v)}"`).join('')}`;
  return inner ? `${open}>${inner}</${el.localName}>` : `${open}/>`;
}

function hidden(el: Element): boolean {
  if (el.closest('[data-export="skip"]')) return true;
  const cs = getComputedStyle(el);
  return cs.display === 'none' || cs.visibility === 'hidden' || (el instanceof HTMLElement && el.hidden);
}

let measureCtx: CanvasRenderingContext2D | null = null;

/** A text node as one <text> per line the browser wrapped it into (words re-broken at the same widths). */
function textPieces(node: Text, ox: number, oy: number, out: Piece[]): void {
  // A node's leading or trailing space separates it from the next one (React splits text around {values}): keep it.
  const text = node.data.replace(/\s+/g, ' ');
  const parent = node.parentElement;
  if (!text.trim() || !parent) return;
  const range = document.createRange();
  range.selectNodeContents(node);
  const rects = [...range.getClientRects()].filter((r) => r.width > 0 && r.height > 0);
  if (!rects.length) return;
  const cs = getComputedStyle(parent);
  const font = { family: cs.fontFamily, size: cs.fontSize, weight: cs.fontWeight, style: cs.fontStyle };
  const size = parseFloat(cs.fontSize) || 12;
  const place = (line: string, r: DOMRect, fit = false): void =>
    void out.push({ kind: 'text', x: r.left - ox, y: r.top - oy + (r.height + size * 0.7) / 2, text: line, font, color: cs.color, ...(fit ? { w: r.width } : {}) });
  if (rects.length === 1) {
    place(text, rects[0]!, true);
    return;
  }
  measureCtx ??= document.createElement('canvas').getContext('2d');
  if (measureCtx) measureCtx.font = `${font.style} ${font.weight} ${font.size} ${font.family}`;
  const words = text.trim().split(' ');
  let w = 0;
  for (let li = 0; li < rects.length && w < words.length; li++) {
    const r = rects[li]!;
    let line = words[w++]!;
    while (w < words.length && li < rects.length - 1) {
      const next = `${line} ${words[w]}`;
      if ((measureCtx?.measureText(next).width ?? next.length * size * 0.55) > r.width + 1) break;
      line = next;
      w++;
    }
    if (li === rects.length - 1) line = [line, ...words.slice(w)].join(' ');
    place(line, r);
  }
}

function collect(el: Element, ox: number, oy: number, out: Piece[]): void {
  if (hidden(el)) return;
  const box = el.getBoundingClientRect();
  if (el instanceof SVGSVGElement) {
    if (box.width === 0 || box.height === 0) return;
    out.push({ kind: 'svg', x: box.left - ox, y: box.top - oy, w: box.width, h: box.height, markup: svgMarkup(el), viewBox: el.getAttribute('viewBox') });
    return;
  }
  if (el instanceof HTMLCanvasElement) {
    if (box.width > 0 && box.height > 0) out.push({ kind: 'image', x: box.left - ox, y: box.top - oy, w: box.width, h: box.height, href: el.toDataURL('image/png') });
    return;
  }
  if (el instanceof HTMLElement && box.width > 0 && box.height > 0) {
    const cs = getComputedStyle(el);
    const stops = gradientStops(cs.backgroundImage);
    if (stops) out.push({ kind: 'rect', x: box.left - ox, y: box.top - oy, w: box.width, h: box.height, fill: stops[0]!, stops });
    else if (cs.backgroundColor && cs.backgroundColor !== 'transparent' && !/rgba\([^)]*,\s*0\)$/.test(cs.backgroundColor))
      out.push({ kind: 'rect', x: box.left - ox, y: box.top - oy, w: box.width, h: box.height, fill: cs.backgroundColor });
  }
  for (const child of el.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) textPieces(child as Text, ox, oy, out);
    else if (child instanceof Element) collect(child, ox, oy, out);
  }
}

/** The chart inside `root` as an SVG document (sizes in CSS pixels). */
export function chartSvg(root: HTMLElement, title: string): { svg: string; width: number; height: number } {
  const box = root.getBoundingClientRect();
  const pieces: Piece[] = [];
  for (const child of root.children) collect(child, box.left, box.top, pieces);
  return { svg: composeSvg(box.width, box.height, title, pieces), width: box.width, height: box.height };
}

/** The SVG drawn at `scale` × its size on a white canvas, as PNG. */
export async function svgToPng(svg: string, width: number, height: number, scale = 2): Promise<Blob> {
  // A data: URL, as the page's Content-Security-Policy allows images from 'self' and data: only.
  const img = new Image();
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = Math.ceil(width * scale);
  canvas.height = Math.ceil(height * scale);
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('no 2D canvas');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  return await new Promise<Blob>((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('PNG encoding failed'))), 'image/png'));
}

/** Saves a blob under `name` through a same-origin Blob URL (the page makes no other request). */
export function downloadBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
