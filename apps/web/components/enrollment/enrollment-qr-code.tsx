"use client";

import QRCode from "qrcode";
import { useEffect, useState } from "react";
import { Skeleton } from "@/components/ui/skeleton";

export function EnrollmentQrCode({ value, alt = "Enrollment QR code", testId = "enrollment-qr" }: { value: string; alt?: string; testId?: string }) {
  const [dataUrl, setDataUrl] = useState<string>();
  const [failed, setFailed] = useState(false);

  useEffect(() => {
    let current = true;
    // Error correction M: readable from a screen at an angle, still small for this payload.
    QRCode.toDataURL(value, { errorCorrectionLevel: "M", margin: 2, width: 256, color: { dark: "#000000", light: "#ffffff" } })
      .then((url) => current && setDataUrl(url))
      .catch(() => current && setFailed(true));
    return () => {
      current = false;
    };
  }, [value]);

  if (failed) return <p className="text-sm text-destructive">Could not draw the QR code; use the text below.</p>;
  if (!dataUrl) return <Skeleton className="size-64" />;
  // A plain <img>: next/image would try to optimize a data URL for nothing.
  // biome-ignore lint/performance/noImgElement: see above
  return <img src={dataUrl} width={256} height={256} alt={alt} className="rounded-md border bg-white" data-testid={testId} />;
}
