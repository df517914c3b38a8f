#!/usr/bin/env node
// `npx k2-offload ...`: runs the TypeScript entry through tsx (a dependency), no build step.
import { register } from 'tsx/esm/api';

register();
await import('./offload.ts');
