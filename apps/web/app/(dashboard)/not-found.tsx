import { NotFoundMessage } from "@/components/states";

export default function DashboardNotFound() {
  return (
    <div className="flex flex-col items-start gap-3 py-10" data-testid="not-found">
      <NotFoundMessage />
    </div>
  );
}
