// zod's default messages ("Too small: expected string to have >=1 characters") are for
// developers. These say the same to people, naming the field; the contracts' own messages
// ("Must be at least 12 characters") are kept as they are.

export const PASSWORD_RULE = "At least 12 characters (at most 72 bytes).";

type Issue = { path: ReadonlyArray<PropertyKey>; message: string };

/** A sentence for one validation message about the field called `label`. */
export function humanMessage(message: string, label = "this field"): string {
  const field = label.toLowerCase();
  const shortText = message.match(/^Too small: expected string to have >=?(\d+) characters?/);
  if (shortText) return Number(shortText[1]) <= 1 ? `Enter ${field}.` : `Use at least ${shortText[1]} characters.`;
  const longText = message.match(/^Too big: expected string to have <=?(\d+) characters?/);
  if (longText) return `Use at most ${longText[1]} characters.`;
  const smallNumber = message.match(/^Too small: expected number to be >=?(\d+)/);
  if (smallNumber) return `Enter a number of at least ${smallNumber[1]}.`;
  const bigNumber = message.match(/^Too big: expected number to be <=?(\d+)/);
  if (bigNumber) return `Enter a number of at most ${bigNumber[1]}.`;
  if (/^Invalid email/i.test(message)) return "Enter an email address, like name@example.com.";
  if (/^Invalid input: expected (string|number), received (undefined|null)/.test(message)) return `Enter ${field}.`;
  if (/^Invalid input: expected number, received NaN/.test(message)) return "Enter a number.";
  if (/^Invalid input: expected int/.test(message) || /expected int/.test(message)) return "Enter a whole number.";
  if (/^Invalid (option|input)/.test(message)) return `Choose a valid ${field}.`;
  if (/^Unrecognized key/.test(message)) return "The form sent a field the server does not know: reload the page.";
  return /[.!?]$/.test(message) ? message : `${message}.`;
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
