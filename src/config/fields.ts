/**
 * The platform's closed sets a config names: the identity fields of an API row a source column can
 * map to, and the accurate-match types. Apart from types.ts, so the schema (which types.ts is
 * derived from) can use them without an import cycle.
 */

/** API row fields a source column can map to (docs/design.md, "The platform"). */
export const IDENTITY_FIELDS = ['thirdId', 'openid', 'unionid', 'phone'] as const;
export type IdentityField = (typeof IDENTITY_FIELDS)[number];

export const ACCURATE_MATCH_TYPES = [
  'gzh',
  'workwechat',
  'YOUZAN',
  'EZR',
  'contentminiapp',
  'contenthome',
] as const;
export type AccurateMatchType = (typeof ACCURATE_MATCH_TYPES)[number];
