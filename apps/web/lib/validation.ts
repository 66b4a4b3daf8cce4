// The contracts' messages (packages/contracts/src/messages.ts) are plain already ("Must
// have at least 12 characters"); next to a form field they read better as what to do,
// naming the field.

export const PASSWORD_RULE = "At least 12 characters (at most 72 bytes).";

type Issue = { path: ReadonlyArray<PropertyKey>; message: string };

/** A sentence for one validation message about the field called `label`. */
export function humanMessage(message: string, label = "this field"): string {
  const field = label.toLowerCase();
  if (message === "Required" || message === "Must not be empty" || /^Must be (text|a number) \(got (undefined|null)\)$/.test(message)) return `Enter ${field}.`;
  const length = message.match(/^Must have (at least|at most) (\d+) characters?$/);
  if (length) return `Use ${length[1]} ${length[2]} characters.`;
  const number = message.match(/^Must be (at least|at most) (\d+)$/);
  if (number) return `Enter a number of ${number[1]} ${number[2]}.`;
  if (message.startsWith("Must be an email address")) return "Enter an email address, like name@example.com.";
  if (message === "Must be a number (got NaN)") return "Enter a number.";
  if (message === "Must be a whole number") return "Enter a whole number.";
  if (message.startsWith("Must be one of:")) return `Choose a valid ${field}.`;
  if (message.startsWith("Unknown field")) return "The form sent a field the server does not know: reload the page.";
  return /[.!?]$/.test(message) ? message : `${message}.`;
}

/** A field's name in words from its path: `settings.requiredApps.0.minVersionCode` → "min version code". */
export function labelOfPath(path: string): string | undefined {
  const name = path
    .split(".")
    .reverse()
    .find((segment) => segment !== "" && !/^\d+$/.test(segment));
  return name?.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase();
}

/** Every field's first error, in words for people; `labels` names the fields. */
export function fieldErrors(issues: ReadonlyArray<Issue>, labels: Record<string, string> = {}): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const issue of issues) {
    const key = String(issue.path[0] ?? "form");
    errors[key] ??= humanMessage(issue.message, labels[key]);
  }
  return errors;
}

/** Whether a reset or invitation link's token has the shape the API issues: `<uuid>.<secret>`. */
export function isWellFormedLinkToken(token: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[A-Za-z0-9_-]{32,128}$/i.test(token);
}
