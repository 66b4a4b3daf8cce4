-- Legacy devices now get a device token at their first contact (or their next one, for
-- those enrolled before): this records when, after which the token is required.
ALTER TABLE "Device" ADD COLUMN "legacyTokenIssuedAt" TIMESTAMPTZ(3);
