// Config errors: each one names file:line:col and the key path, and all of them are reported at once.

/** One problem in a config file. `path` is the key path as a user reads it, like `routes[1].timeout`. */
export interface ConfigIssue {
  readonly line: number
  readonly col: number
  readonly path: string
  readonly message: string
}

/** Line 0 means the problem has no place in the file (it could not be read): just the file is named. */
export function formatIssue (file: string, issue: ConfigIssue): string {
  if (issue.line === 0) return `${file}: ${issue.message}`
  const where = `${file}:${issue.line}:${issue.col}`
  return issue.path === '' ? `${where} ${issue.message}` : `${where} ${issue.path}: ${issue.message}`
}

export class ConfigError extends Error {
  readonly file: string
  readonly issues: readonly ConfigIssue[]

  constructor (file: string, issues: readonly ConfigIssue[]) {
    const sorted = [...issues].sort((a, b) => a.line - b.line || a.col - b.col)
    super(sorted.map((issue) => formatIssue(file, issue)).join('\n'))
    this.name = 'ConfigError'
    this.file = file
    this.issues = sorted
  }
}

/** `['routes', 1, 'timeout']` as `routes[1].timeout`. */
export function formatPath (path: ReadonlyArray<string | number>): string {
  let text = ''
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`
    else text += text === '' ? segment : `.${segment}`
  }
  return text
}
