import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './ui/App.tsx';
import { getServices } from './ui/services.ts';
import { installTestHooks } from './ui/test-hooks.ts';
import './ui/styles.css';

if (getServices().test.test) installTestHooks();

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root element');
createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
