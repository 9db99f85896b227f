#!/usr/bin/env node
/**
 * The `millrace` executable: catches SIGTERM and SIGINT first
 * (early-signals.ts), then loads the command line (cli.ts). Loading the CLI's
 * modules takes a while; a signal meanwhile must wait for the command, so
 * that a node told to stop as it starts still stops gracefully.
 */
import './early-signals.js';

await import('./cli.js');
