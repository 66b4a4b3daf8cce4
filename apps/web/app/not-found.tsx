import { NotFoundMessage } from "@/components/states";

export default function NotFound() {
  return (
    <main className="flex min-h-screen flex-col items-center justify-center gap-3 p-6 text-center">
      <NotFoundMessage />
    </main>
  );
}
