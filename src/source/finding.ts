/** One finding of `check` (and of the start's checks): what was checked, the verdict, the fix. */
export interface Finding {
  check: string;
  ok: boolean;
  /** Passed, but something is worth the operator's attention (printed with its fix). */
  warn?: boolean;
  detail: string;
  fix?: string;
}
