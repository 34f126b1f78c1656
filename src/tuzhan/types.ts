/** The platform's wire format (docs/design.md, "The platform", from the vendor's page): what the client sends and reads. */
import type { AccurateMatchType, IdentityField } from '../config/types.js';

import type { OptType } from '../domain/types.js';

export type { OptType } from '../domain/types.js';

export interface PublicParams {
  isMatching: boolean;
  matchingType?: 1 | 2;
  identifyWay?: 1 | 2;
  accurateMatchType?: AccurateMatchType;
  accurateMatchValue?: string;
  /** Sent as a string: the vendor's table says int, its example and newer docs send the string. */
  optType: OptType;
}

/** One row of `data`. Absent fields are omitted; identities are never null or "". */
export interface ApiRow {
  identityType?: IdentityField;
  thirdId?: string;
  openid?: string;
  unionid?: string;
  phone?: string;
  /** Comma-separated group names. */
  groups?: string;
}

export interface BatchAddBody {
  publicParams: PublicParams;
  data: ApiRow[];
}

/** `data` of the platform's answer. */
export interface BatchAddResult {
  /** -1 failed, 0 in progress, 1 success, 2 partly imported. */
  status: number;
  message?: string;
  importSuccessNum?: number;
  importFailNum?: number;
  errorData?: ApiRow[] | null;
}

export interface BatchAddResponse {
  code: string;
  errorCode?: string;
  msg?: string;
  data?: BatchAddResult | null;
}

/** What happened to one sent row, index-aligned with the rows of the request. */
export type RowOutcome = { status: 'synced' } | { status: 'accepted' } | { status: 'failed'; error: string };
