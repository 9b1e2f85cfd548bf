import { dismissError, dismissNotice, useApp } from './state.ts';

export function ErrorBanner() {
  const errors = useApp((s) => s.errors);
  const notice = useApp((s) => s.notice);
  return (
    <div className="banners">
      {errors.map((b) => (
        <div className="banner banner-error" role="alert" data-testid="error-banner" data-code={b.code} key={b.id}>
          <span className="banner-text">{b.message}</span>
          <button className="banner-close" aria-label="Dismiss" data-testid="error-dismiss" onClick={() => dismissError(b.id)}>
            ×
          </button>
        </div>
      ))}
      {notice && (
        <div className="banner banner-info" role="status" data-testid="notice">
          <span className="banner-text">{notice}</span>
          <button className="banner-close" aria-label="Dismiss" onClick={dismissNotice}>
            ×
          </button>
        </div>
      )}
    </div>
  );
}
