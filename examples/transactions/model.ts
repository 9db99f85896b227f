/**
 * The transactions pipeline of the seed notes (filter → transform → enrich →
 * classify → per-user totals) as plain functions, so the job and the tests'
 * reference use the same logic.
 */

/** A raw transaction as producers write it (JSON). */
export interface Transaction {
  transactionId: string;
  userId: string;
  amount: number;
  merchant: string;
  /** ms since the epoch */
  timestamp: number;
}

export type Risk = 'LOW_RISK' | 'MEDIUM_RISK' | 'HIGH_RISK';

export interface Payment {
  id: string;
  user: string;
  amountUsd: number;
  merchant: string;
  timestamp: number;
  userName?: string;
  userTier?: string;
  userCountry?: string;
  risk?: Risk;
}

export interface UserTotal {
  user: string;
  name: string | undefined;
  total: number;
  count: number;
  highRisk: number;
  lastTransaction: string;
}

/** The reference table the seed keeps in DynamoDB; a static table here. */
export const USERS: Record<string, { name: string; tier: string; country: string }> = {
  alice: { name: 'Alice Smith', tier: 'gold', country: 'US' },
  bob: { name: 'Bob Jones', tier: 'silver', country: 'CA' },
  charlie: { name: 'Charlie Brown', tier: 'bronze', country: 'UK' },
  dana: { name: 'Dana Lee', tier: 'gold', country: 'KR' },
  emeka: { name: 'Emeka Obi', tier: 'silver', country: 'NG' },
};

/** Stage 1: low-value transactions are not worth the rest. */
export const isWorthProcessing = (t: Transaction): boolean => t.amount >= 100;

/** Stage 2: the standard format. */
export const toPayment = (t: Transaction): Payment => ({
  id: t.transactionId,
  user: t.userId,
  amountUsd: t.amount,
  merchant: t.merchant,
  timestamp: t.timestamp,
});

/** Stage 3: user data from the reference table; unknown users pass unenriched. */
export function enrich(p: Payment): Payment {
  const u = USERS[p.user];
  return u ? { ...p, userName: u.name, userTier: u.tier, userCountry: u.country } : p;
}

/** Stage 4: risk by amount. */
export function classify(p: Payment): Payment {
  const risk: Risk = p.amountUsd > 3000 ? 'HIGH_RISK' : p.amountUsd > 1000 ? 'MEDIUM_RISK' : 'LOW_RISK';
  return { ...p, risk };
}

/** Stage 5, the stateful one: a user's running totals after `p`. */
export function addToTotal(previous: UserTotal | undefined, p: Payment): UserTotal {
  return {
    user: p.user,
    name: p.userName,
    total: Math.round(((previous?.total ?? 0) + p.amountUsd) * 100) / 100,
    count: (previous?.count ?? 0) + 1,
    highRisk: (previous?.highRisk ?? 0) + (p.risk === 'HIGH_RISK' ? 1 : 0),
    lastTransaction: p.id,
  };
}
