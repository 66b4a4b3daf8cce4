import { z } from "zod";
import { DeviceView } from "./devices";
import { DateTime, DeviceIdList, GroupName, Uuid, nonEmptyText, text } from "./primitives";

/** What retiring a device did: the device as it is now and the commands that were cancelled. */
export const RetireDeviceResponse = z.object({
  device: DeviceView,
  cancelledCommands: z.int().describe("Pending commands cancelled by this retirement (0 when the device was already retired)."),
  alreadyRetired: z.boolean().describe("True when the device had been retired before: nothing changed."),
});
export type RetireDeviceResponse = z.infer<typeof RetireDeviceResponse>;

/** A rotation under way: the device gets its new token and key through its own channel. */
export const RotateTokenResponse = z.object({
  device: DeviceView,
  requestId: Uuid.describe("The `rotate_token` command carrying the new token and command key, sealed and signed with the current key."),
  commandKeyId: z.string().describe("Id of the new command key."),
  graceUntil: DateTime.describe("Until when the current token stays valid if the device has not taken the new one."),
});
export type RotateTokenResponse = z.infer<typeof RotateTokenResponse>;

/**
 * Where the fleet stands in a rotation of the command master key: how many devices in
 * service hold a key under each configured master key. The previous key can be dropped
 * once `previous.devices` is 0.
 */
export const CommandKeysStatus = z.object({
  current: z.object({
    keyId: z.string().describe("COMMAND_KEY_ID: the master key new devices and every re-key get their key under."),
    devices: z.int().describe("Devices in service whose command key derives from it."),
  }),
  previous: z
    .object({
      keyId: z.string().describe("COMMAND_KEY_ID_PREVIOUS."),
      devices: z
        .int()
        .describe("Devices in service whose command key still derives from it (those with a rotation pending included). 0: the previous key can be dropped."),
      rotating: z.int().describe("Of those, devices with a rotation queued and within its grace period: they move once they call in."),
      lockedOut: z
        .int()
        .describe("Of those, devices whose rotation's grace period ended before they took it: their token is refused; retire them (they enroll again)."),
    })
    .nullable()
    .describe("The master key being replaced (COMMAND_MASTER_KEY_PREVIOUS); null when none is set."),
  unavailable: z
    .int()
    .describe("Devices in service whose key derives from a master key that is neither: no command can be signed for them until it is configured again."),
});
export type CommandKeysStatus = z.infer<typeof CommandKeysStatus>;

// ---- Bulk edit -----------------------------------------------------------------------

/** Most devices one bulk edit may touch: narrow the selection past it. */
export const MAX_BULK_EDIT_DEVICES = 10_000;

export const DeviceFilter = z.strictObject({
  status: z.enum(["online", "offline"]).optional(),
  group: GroupName.optional(),
  search: text(100).optional().describe("As in `GET /admin/devices`."),
  batteryBelow: z.int().min(1).max(101).optional(),
  appVersion: text(64).optional(),
});
export type DeviceFilter = z.infer<typeof DeviceFilter>;

/** Which devices a bulk edit touches. Retired devices are never selected. */
export const DeviceSelection = z.union([
  z.strictObject({ deviceIds: DeviceIdList }),
  z.strictObject({ group: GroupName }),
  z.strictObject({ enrollmentTokenId: Uuid }).describe("The devices enrolled with this token: to retire them after revoking it."),
  z.strictObject({ filter: DeviceFilter }).describe("The devices `GET /admin/devices` lists with these filters."),
]);
export type DeviceSelection = z.infer<typeof DeviceSelection>;

export const BulkEditDevicesRequest = z
  .strictObject({
    target: DeviceSelection,
    setGroups: z.array(GroupName).max(20).optional().describe("Replaces each device's groups."),
    addGroups: z.array(GroupName).min(1).max(20).optional(),
    removeGroups: z.array(GroupName).min(1).max(20).optional(),
    aliasPrefix: nonEmptyText(50).optional().describe("Names the devices `<prefix>001`, `<prefix>002`... in order of enrollment."),
    retire: z.literal(true).optional().describe("Retires every selected device, as `POST /admin/devices/{deviceId}/retire` does."),
  })
  .refine((body) => body.setGroups || body.addGroups || body.removeGroups || body.aliasPrefix || body.retire, {
    message: "Send at least one of setGroups, addGroups, removeGroups, aliasPrefix, retire",
  })
  .refine((body) => !(body.setGroups && (body.addGroups || body.removeGroups)), {
    message: "setGroups replaces the groups: send it without addGroups or removeGroups",
    path: ["setGroups"],
  });
export type BulkEditDevicesRequest = z.infer<typeof BulkEditDevicesRequest>;

export const BulkEditDevicesResponse = z.object({
  matched: z.int().describe("Devices the selection matched (retired ones excepted)."),
  updated: z.int().describe("Devices whose groups or alias were changed."),
  retired: z.int(),
  cancelledCommands: z.int().describe("Pending commands cancelled by the retirements."),
});
export type BulkEditDevicesResponse = z.infer<typeof BulkEditDevicesResponse>;
