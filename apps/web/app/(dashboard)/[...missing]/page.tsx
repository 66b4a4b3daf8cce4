import { notFound } from "next/navigation";

// Any address no page claims: "not found" inside the dashboard's frame, sidebar included.
export default function Missing() {
  notFound();
}
