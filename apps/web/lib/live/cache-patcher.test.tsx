/** @jest-environment jsdom */
import { act, render, screen, waitFor } from "@testing-library/react";
import { type ReactNode, useState } from "react";
import useSWR, { SWRConfig, useSWRConfig } from "swr";
import { CachePatcher } from "./cache-patcher";

// The patcher against SWR itself: fetches that answer when a test says so, and patches
// made the way live frames make them.

const KEY = "/things";
type Thing = { version: number; battery: number };

type Pending = { resolve: (thing: Thing) => void; reject: (error: Error) => void };
let fetches: Pending[] = [];
let patcher: CachePatcher | undefined;
let swrMutate: ((key: string) => Promise<unknown>) | undefined;

const fetcher = () =>
  new Promise<Thing>((resolve, reject) => {
    fetches.push({ resolve, reject });
  });

function WithPatcher({ children }: { children: ReactNode }) {
  const { cache, mutate } = useSWRConfig();
  const [created] = useState(() => new CachePatcher(cache, mutate));
  patcher = created;
  swrMutate = mutate;
  return <SWRConfig value={{ use: [created.middleware] }}>{children}</SWRConfig>;
}

function Shown() {
  const { data } = useSWR(KEY, fetcher);
  return <p>{data ? `version ${data.version}, battery ${data.battery}` : "loading"}</p>;
}

const batteryPatch = (battery: number) => (thing: Thing) => (thing.battery === battery ? thing : { ...thing, battery });

async function answer(index: number, thing: Thing) {
  await act(async () => {
    fetches[index]!.resolve(thing);
    await new Promise((resolve) => setTimeout(resolve, 10));
  });
}

/** A refetch as an edit's refresh asks for it: straight from SWR, past the patcher. */
async function refetch() {
  await act(async () => {
    void swrMutate!(KEY);
  });
}

beforeEach(async () => {
  fetches = [];
  patcher = undefined;
  swrMutate = undefined;
  render(
    <SWRConfig value={{ provider: () => new Map(), dedupingInterval: 0, revalidateOnFocus: false }}>
      <WithPatcher>
        <Shown />
      </WithPatcher>
    </SWRConfig>,
  );
  await waitFor(() => expect(fetches).toHaveLength(1));
  await answer(0, { version: 1, battery: 80 });
  await screen.findByText("version 1, battery 80");
});

test("a patch made while the key is fetched lands on the response", async () => {
  await refetch();
  act(() => void patcher!.patch<Thing>((key) => key === KEY, batteryPatch(42)));
  expect(screen.getByText("version 1, battery 80")).toBeTruthy();
  await answer(1, { version: 2, battery: 80 });
  await screen.findByText("version 2, battery 42");
});

test("a patch held during an older fetch, which SWR discards after a newer one landed, is still applied", async () => {
  await refetch();
  await refetch();
  await answer(2, { version: 3, battery: 80 });
  await screen.findByText("version 3, battery 80");
  act(() => void patcher!.patch<Thing>((key) => key === KEY, batteryPatch(42)));
  await answer(1, { version: 2, battery: 80 });
  await screen.findByText("version 3, battery 42");
});

test("a patch held during a fetch that fails is applied to what is shown", async () => {
  await refetch();
  act(() => void patcher!.patch<Thing>((key) => key === KEY, batteryPatch(42)));
  await act(async () => {
    fetches[1]!.reject(new Error("network down"));
    await new Promise((resolve) => setTimeout(resolve, 10));
  });
  await screen.findByText("version 1, battery 42");
});

test("a refetch asked for while the key is fetched starts when that fetch ends, not over it", async () => {
  await refetch();
  act(() => patcher!.revalidate((key) => key === KEY));
  expect(fetches).toHaveLength(2);
  await answer(1, { version: 2, battery: 80 });
  await screen.findByText("version 2, battery 80");
  await waitFor(() => expect(fetches).toHaveLength(3));
  await answer(2, { version: 3, battery: 80 });
  await screen.findByText("version 3, battery 80");
});

test("with no fetch in flight a patch is applied at once, and a refetch starts at once", async () => {
  act(() => void patcher!.patch<Thing>((key) => key === KEY, batteryPatch(42)));
  await screen.findByText("version 1, battery 42");
  act(() => patcher!.revalidate((key) => key === KEY));
  await waitFor(() => expect(fetches).toHaveLength(2));
});
