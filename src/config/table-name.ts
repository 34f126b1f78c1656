import { ConfigError } from '../errors.js';

/** PostgreSQL's NAMEDATALEN - 1: longer identifiers are silently truncated by the server. */
const MAX_IDENTIFIER_BYTES = 63;

/**
 * An unquoted identifier as PostgreSQL's lexer accepts it (section 4.1.1): a letter, underscore or
 * any non-ASCII character first, then also digits and `$`.
 */
const UNQUOTED_IDENTIFIER = /^[A-Za-z_\u0080-\u{10FFFF}][A-Za-z0-9_$\u0080-\u{10FFFF}]*$/u;

export interface TableName {
  schema: string;
  table: string;
}

/**
 * Parses `schema.table` the way PostgreSQL reads a qualified name: `"..."` parts are taken
 * verbatim (`""` is an escaped quote), unquoted parts fold ASCII letters to lower case (non-ASCII
 * letters are kept, as the server does in UTF-8 databases). Returns a problem text instead of
 * throwing, so the config validator can prefix it with the key path.
 */
export function tryParseTableName(input: string): TableName | string {
  const parts: string[] = [];
  let i = 0;
  const s = input.trim();
  if (s === '') return 'is empty; expected schema.table';
  while (true) {
    while (s[i] === ' ') i++;
    let part: string;
    if (s[i] === '"') {
      let j = i + 1;
      part = '';
      while (true) {
        const close = s.indexOf('"', j);
        if (close === -1) return 'has an unterminated quoted identifier';
        part += s.slice(j, close);
        if (s[close + 1] === '"') {
          part += '"';
          j = close + 2;
          continue;
        }
        i = close + 1;
        break;
      }
      if (part === '') return 'has a zero-length quoted identifier ("")';
    } else {
      let j = i;
      while (j < s.length && s[j] !== '.' && s[j] !== ' ' && s[j] !== '"') j++;
      const word = s.slice(i, j);
      if (word === '') return 'has an empty name part; expected schema.table';
      if (!UNQUOTED_IDENTIFIER.test(word))
        return `has an invalid unquoted name "${word}"; put it in double quotes, e.g. crm."${word}"`;
      part = word.replace(/[A-Z]/g, (c) => c.toLowerCase());
      i = j;
    }
    if (Buffer.byteLength(part, 'utf8') > MAX_IDENTIFIER_BYTES)
      return `has a name part longer than ${MAX_IDENTIFIER_BYTES} bytes, which PostgreSQL would truncate`;
    parts.push(part);
    while (s[i] === ' ') i++;
    if (i >= s.length) break;
    if (s[i] !== '.') return `has unexpected text after "${parts.join('.')}"`;
    i++;
  }
  if (parts.length === 1) return 'has no schema; write it schema-qualified, e.g. public.' + input.trim();
  if (parts.length > 2)
    return 'has too many parts; expected schema.table (the database is the one in postgres.url)';
  return { schema: parts[0]!, table: parts[1]! };
}

/**
 * Parses a schema-qualified table name (`crm.customer`, `"Crm"."Member Group"`, `客户.分组`).
 * @throws ConfigError when the name is not `schema.table`.
 */
export function parseTableName(s: string): TableName {
  const parsed = tryParseTableName(s);
  if (typeof parsed === 'string') throw new ConfigError([`table ${JSON.stringify(s)} ${parsed}`]);
  return parsed;
}
