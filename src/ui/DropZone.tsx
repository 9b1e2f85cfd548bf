import { useEffect, useRef, useState, type DragEvent, type MouseEvent } from 'react';
import { collectDropped, filesFromInput, hasPicker, pickWithHandles, takeDropped } from './drop.ts';
import { loadPicked, showError, useApp } from './state.ts';

export function DropZone() {
  const [over, setOver] = useState(false);
  const folderInput = useRef<HTMLInputElement>(null);
  const busy = useApp((s) => s.ingest !== null);

  useEffect(() => {
    // React has no typed prop for these; set them on the element.
    folderInput.current?.setAttribute('webkitdirectory', '');
    folderInput.current?.setAttribute('directory', '');
  }, []);

  // Chromium's pickers give file handles (the checkpoint can be reopened after a reload); elsewhere the label
  // opens its file input as usual.
  const pick = (what: 'folder' | 'files') => (ev: MouseEvent<HTMLLabelElement>) => {
    if (busy || !hasPicker(what)) return;
    ev.preventDefault();
    pickWithHandles(what)
      .then((picked) => (picked && picked.length ? loadPicked(picked) : undefined))
      .catch(showError);
  };

  const onDrop = (ev: DragEvent<HTMLDivElement>) => {
    ev.preventDefault();
    setOver(false);
    if (busy) return;
    const items = takeDropped(ev.dataTransfer);
    collectDropped(items).then(loadPicked, showError);
  };

  return (
    <div
      className={`dropzone${over ? ' dropzone-over' : ''}${busy ? ' dropzone-busy' : ''}`}
      data-testid="drop-zone"
      onDragOver={(ev) => {
        ev.preventDefault();
        ev.dataTransfer.dropEffect = 'copy';
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={onDrop}
    >
      <div className="dropzone-icon" aria-hidden>
        ⇣
      </div>
      <div className="dropzone-title">Drop a checkpoint folder or its files here</div>
      <div className="muted small">
        config.json, model.safetensors.index.json and the *.safetensors shards. Files are read where they are; nothing is uploaded.
      </div>
      <div className="dropzone-buttons">
        <label className="btn" onClick={pick('files')}>
          Choose files…
          <input
            type="file"
            multiple
            data-testid="model-files"
            disabled={busy}
            onChange={(ev) => {
              loadPicked(filesFromInput(ev.currentTarget.files)).catch(showError);
              ev.currentTarget.value = '';
            }}
          />
        </label>
        <label className="btn" onClick={pick('folder')}>
          Choose folder…
          <input
            ref={folderInput}
            type="file"
            data-testid="model-folder"
            disabled={busy}
            onChange={(ev) => {
              loadPicked(filesFromInput(ev.currentTarget.files)).catch(showError);
              ev.currentTarget.value = '';
            }}
          />
        </label>
      </div>
    </div>
  );
}
