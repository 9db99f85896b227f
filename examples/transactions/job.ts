/**
 * The example job: transactions (JSON on a plain JetStream stream, as an
 * existing system would write them) → filter → transform → enrich →
 * classify → keyBy user → running totals per user → millrace stream
 * `user-totals`.
 */
import { job, keyed, sink, source, value } from '../../index.js';
import { addToTotal, classify, enrich, isWorthProcessing, toPayment, type Payment, type Transaction, type UserTotal } from './model.js';

export const INPUT_STREAM = 'TRANSACTIONS';
export const INPUT_SUBJECTS = 'transactions.>';
export const OUTPUT_STREAM = 'user-totals';

/** Per-user running totals, kept in keyed state. */
export const UserTotals = keyed({
  name: 'user-totals',
  state: { totals: value<UserTotal>() },
  onRecord(payment: Payment, ctx): UserTotal {
    const next = addToTotal(ctx.state.totals.get(), payment);
    ctx.state.totals.set(next);
    return next;
  },
});

export default job('transactions')
  .from(source.jetstream<Transaction>({ stream: INPUT_STREAM, format: 'json', key: (t) => t.userId }))
  .filter(isWorthProcessing, 'filter-small')
  .map(toPayment, 'transform')
  .map(enrich, 'enrich')
  .map(classify, 'classify')
  .keyBy((p) => p.user, { partitions: 4 })
  .process(UserTotals)
  .to(sink.stream<UserTotal>(OUTPUT_STREAM, { partitions: 4 }));
