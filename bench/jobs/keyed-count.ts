/**
 * The bench's keyed count as a job module for `millrace node start --job`
 * (scenario f), configured by environment:
 *
 *   BENCH_JOB            job name
 *   BENCH_INPUT_STREAM   millrace stream of msgpack BenchEvents
 *   BENCH_OUTPUT_STREAM  millrace stream the counts go to
 */
import { keyedCountJob } from '../keyed-count.js';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`bench/jobs/keyed-count: set ${name}`);
  return value;
}

export default keyedCountJob(required('BENCH_JOB'), required('BENCH_INPUT_STREAM'), required('BENCH_OUTPUT_STREAM'));
