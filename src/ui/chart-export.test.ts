import { describe, expect, it } from 'vitest';
import { composeSvg, escapeXml, fileStem, gradientStops } from './chart-export.ts';

describe('chart export', () => {
  it('reads the colours of a left-to-right gradient and nothing else', () => {
    expect(gradientStops('linear-gradient(to right, rgb(8, 48, 107), rgb(247, 251, 255))')).toEqual(['rgb(8, 48, 107)', 'rgb(247, 251, 255)']);
    expect(gradientStops('linear-gradient(90deg, #fff, #000 50%, rgba(0, 0, 0, 0.5))')).toEqual(['#fff', '#000', 'rgba(0, 0, 0, 0.5)']);
    expect(gradientStops('none')).toBeNull();
    expect(gradientStops('linear-gradient(to bottom, #fff, #000)')).toBeNull();
    expect(gradientStops('linear-gradient(to right, #fff)')).toBeNull();
  });

  it('composes one SVG document: pieces in place, text escaped, gradients defined once each', () => {
    const svg = composeSvg(300.4, 200, 'A & B <chart>', [
      { kind: 'rect', x: 0, y: 0, w: 10, h: 5, fill: '#f00' },
      { kind: 'rect', x: 1, y: 2, w: 100, h: 8, fill: 'rgb(0, 0, 0)', stops: ['rgb(0, 0, 0)', '#fff', '#00f'] },
      { kind: 'svg', x: 12.345, y: 30, w: 200, h: 100, markup: '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100"><circle cx="5" cy="5" r="2"/></svg>' },
      { kind: 'svg', x: 0, y: 0, w: 1, h: 1, markup: '<svg xmlns="http://www.w3.org/2000/svg"/>' },
      { kind: 'svg', x: 2, y: 3, w: 14, h: 14, viewBox: '0 0 32 32', markup: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path d="M0,16h32"/></svg>' },
      { kind: 'image', x: 5, y: 6, w: 40, h: 40, href: 'data:image/png;base64,AAAA' },
      { kind: 'text', x: 1, y: 2, text: 'fitted ', font: { family: 'serif', size: '10px', weight: '700', style: 'italic' }, color: '#000', w: 33.333 },
      { kind: 'text', x: 4, y: 18, text: 'similar ← "x" → different & more', font: { family: '"Inter", sans-serif', size: '12px', weight: '400', style: 'normal' }, color: 'rgb(1, 2, 3)' },
    ]);
    expect(svg.startsWith('<?xml')).toBe(true);
    expect(svg).toContain('width="301" height="200" viewBox="0 0 301 200"');
    expect(svg).toContain('<title>A &amp; B &lt;chart&gt;</title>');
    expect(svg).toContain('<linearGradient id="g0" x1="0" x2="1" y1="0" y2="0"><stop offset="0" stop-color="rgb(0, 0, 0)"/><stop offset="0.5" stop-color="#fff"/><stop offset="1" stop-color="#00f"/></linearGradient>');
    expect(svg).toContain('<rect x="1" y="2" width="100" height="8" fill="url(#g0)"/>');
    expect(svg).toContain('<rect x="0" y="0" width="10" height="5" fill="#f00"/>');
    expect(svg).toContain('<svg x="12.35" y="30" width="200" height="100" overflow="visible"><circle cx="5" cy="5" r="2"/></svg>');
    expect(svg).toContain('<svg x="0" y="0" width="1" height="1" overflow="visible"></svg>');
    expect(svg).toContain('<svg x="2" y="3" width="14" height="14" viewBox="0 0 32 32" overflow="visible"><path d="M0,16h32"/></svg>');
    expect(svg).toContain('<image x="5" y="6" width="40" height="40" preserveAspectRatio="none" href="data:image/png;base64,AAAA"/>');
    expect(svg).toContain(
      '<text x="4" y="18" font-family="&quot;Inter&quot;, sans-serif" font-size="12px" font-weight="400" font-style="normal" fill="rgb(1, 2, 3)" xml:space="preserve">similar ← &quot;x&quot; → different &amp; more</text>',
    );
    expect(svg).toContain('<text x="1" y="2" textLength="33.33" lengthAdjust="spacingAndGlyphs" font-family="serif" font-size="10px" font-weight="700" font-style="italic" fill="#000" xml:space="preserve">fitted </text>');
    // No style attribute anywhere: the page's Content-Security-Policy would refuse it when the SVG is drawn for the PNG.
    expect(svg).not.toMatch(/\sstyle=/);
    // Balanced: every opened <svg> is closed.
    expect(svg.match(/<svg[\s>]/g)?.length).toBe(svg.match(/<\/svg>/g)?.length);
  });

  it('escapes markup and names files from titles', () => {
    expect(escapeXml('<a href="x">&</a>')).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;');
    expect(fileStem('Size against quality: held-out perplexity')).toBe('size-against-quality-held-out-perplexity');
    expect(fileStem('Mean error ‖y − ŷ‖²')).toBe('mean-error-y');
    expect(fileStem('→')).toBe('chart');
  });
});
