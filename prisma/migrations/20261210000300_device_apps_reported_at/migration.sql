-- When a heartbeat last reported the device's apps: a release counts a device whose install
-- command succeeded as installed until a report after that says otherwise.
ALTER TABLE "Device" ADD COLUMN "appsReportedAt" TIMESTAMPTZ(3);
