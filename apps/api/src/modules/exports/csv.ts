// CSV per RFC 4180, safe to open in a spreadsheet: a text cell starting with `=`, `+`, `-`
// or `@` (or a tab or carriage return, which some spreadsheets skip before them) would run
// as a formula, so it gets a leading `'` (OWASP's advice). Numbers and booleans are
// written as they are: they cannot be formulas.

const FORMULA_START = /^[=+\-@\t\r]/;

export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  let text = value instanceof Date ? value.toISOString() : typeof value === "string" ? value : JSON.stringify(value);
  if (FORMULA_START.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvLine(values: unknown[]): string {
  return `${values.map(csvCell).join(",")}\r\n`;
}
