#!/usr/bin/env node
// Entry point of the `condense` command; run `npm run build` first (npm start does).
require('../dist/src/cli/main.js');
