import { z } from "zod";
import { DeviceView } from "./devices";

/** What retiring a device did: the device as it is now and the commands that were cancelled. */
export const RetireDeviceResponse = z.object({
  device: DeviceView,
  cancelledCommands: z.int().describe("Pending commands cancelled by this retirement (0 when the device was already retired)."),
  alreadyRetired: z.boolean().describe("True when the device had been retired before: nothing changed."),
});
export type RetireDeviceResponse = z.infer<typeof RetireDeviceResponse>;
