import js from '@eslint/js';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/**
 * Layers in the order the data flows (issue 22). A module may import the stages after its own and
 * the foundation (config, util, errors, domain), never a stage before its own: one change is
 * followed down the folders without climbing back up, and a stage knows the next one only through
 * what that one declares (delivery declares the requests the dispatcher builds, the dispatcher what
 * it needs of a source). README.md ("Development") and docs/design.md ("The shape") list the same
 * order; `test/unit/layers.test.ts` shows each rule failing.
 *
 *   cli -> demo -> throwaway -> simulator -> daemon.ts -> pipeline -> ops
 *     -> source (the stream) -> router -> mapping -> batching -> delivery -> tuzhan, status -> decode
 *
 * The commands and the daemon wire the pipeline, which runs the stages below it. `decode` (pgoutput's
 * messages as typed values) is the vocabulary the stream, the router and mapping share, so it sits
 * under all of them.
 */
const STAGES = [
  ['cli'],
  ['demo'],
  ['throwaway'],
  ['simulator'],
  ['daemon.ts'],
  ['pipeline'],
  ['ops'],
  ['source'],
  ['router'],
  ['mapping'],
  ['batching'],
  ['delivery'],
  ['tuzhan', 'status'],
  ['decode'],
];

/** Import patterns of a stage: a directory (`**\/status/*`) or a module at the top of src/. */
const patternsOf = (stage) =>
  stage.map((s) => (s.endsWith('.ts') ? `**/${s.replace(/\.ts$/, '.js')}` : `**/${s}/*`));
const filesOf = (stage) => stage.map((s) => (s.endsWith('.ts') ? `src/${s}` : `src/${s}/**`));

const layers = STAGES.slice(1).map((stage, i) => ({
  files: filesOf(stage),
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            group: STAGES.slice(0, i + 1).flatMap(patternsOf),
            message: `${stage.join(', ')} must not import a stage before its own (eslint.config.js lists the order)`,
          },
        ],
      },
    ],
  },
}));

const foundation = {
  files: ['src/config/**', 'src/util/**', 'src/errors.ts', 'src/domain/**'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            group: STAGES.flatMap(patternsOf),
            message: 'the foundation (config, util, errors, domain) must not import a stage',
          },
        ],
      },
    ],
  },
};

/**
 * No import cycles, whatever the layers allow (a stage's own files, the foundation): a module that
 * imports itself back through others loads half-initialised. `import type` is not followed here;
 * `test/unit/layers.test.ts` checks that type-only cycles are absent too.
 */
const noCycles = {
  files: ['src/**/*.ts'],
  plugins: { 'import-x': importX },
  settings: {
    'import-x/extensions': ['.ts', '.js'],
    'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
    // Imports name the compiled `.js`; the sources are `.ts`.
    'import-x/resolver-next': [createNodeResolver({ extensionAlias: { '.js': ['.ts', '.js'] } })],
  },
  rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
};

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      'coverage/',
      'bench/results/',
      '.tmp/',
      'reports/mutation/',
      '.stryker-tmp/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // The web console's page runs in the browser as served (src/ops/console/static, no build step).
    files: ['src/ops/console/static/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          'window',
          'document',
          'location',
          'sessionStorage',
          'fetch',
          'Node',
          'URLSearchParams',
          'confirm',
          'setTimeout',
          'setInterval',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  foundation,
  ...layers,
  noCycles,
);
