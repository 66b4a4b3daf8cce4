import type { Metadata } from "next";
import { DeviceDetail } from "@/components/devices/device-detail";

export const metadata: Metadata = { title: "Device" };

export default async function DevicePage({ params }: { params: Promise<{ deviceId: string }> }) {
  const { deviceId } = await params;
  return <DeviceDetail deviceId={deviceId} />;
}
