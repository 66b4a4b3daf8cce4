"use client";

import { DASHBOARD_WS_PROTOCOL, type DashboardClientFrame, DashboardServerFrame, WS_TICKET_PROTOCOL_PREFIX, authRoutes } from "@mdm/contracts";
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState } from "react";
import { SWRConfig, useSWRConfig } from "swr";
import { ApiError, callApi } from "@/lib/api";
import { dashboardSocketUrl } from "@/lib/config";
import { applyUpdateFrame } from "./apply-frame";
import { reconnectDelayMs } from "./backoff";
import { CachePatcher } from "./cache-patcher";
import { RevalidationScheduler } from "./revalidation-scheduler";

export type LiveStatus = { state: "connecting" } | { state: "live" } | { state: "reconnecting"; retryAt: number; attempt: number };

type LiveContextValue = { status: LiveStatus; reconnectNow: () => void };

const LiveContext = createContext<LiveContextValue>({ status: { state: "connecting" }, reconnectNow: () => {} });

// Proxies close idle sockets; the dashboard's one allowed frame keeps this one busy.
const KEEPALIVE_MS = 25_000;
const POLL_WHILE_DISCONNECTED_MS = 30_000;

const keepalive: DashboardClientFrame = { type: "ping" };

/**
 * Holds the dashboard WebSocket open for as long as the dashboard is shown: authenticates
 * with a one-time ticket, folds each frame into the SWR cache, and reconnects with
 * exponential backoff. After a reconnect every cached response is refetched, since frames
 * sent while disconnected are lost.
 */
export function LiveUpdatesProvider({ children }: { children: React.ReactNode }) {
  const { cache, mutate } = useSWRConfig();
  const patcher = useMemo(() => new CachePatcher(cache, mutate), [cache, mutate]);
  const [status, setStatus] = useState<LiveStatus>({ state: "connecting" });
  const connectRef = useRef<() => void>(() => {});

  useEffect(() => {
    const scheduler = new RevalidationScheduler((filter) => patcher.revalidate(filter));
    let socket: WebSocket | undefined;
    let retryTimer: ReturnType<typeof setTimeout> | undefined;
    let keepaliveTimer: ReturnType<typeof setInterval> | undefined;
    let attempt = 0;
    let connectedBefore = false;
    let stopped = false;

    const scheduleReconnect = () => {
      if (stopped) return;
      const delay = reconnectDelayMs(attempt);
      attempt += 1;
      setStatus({ state: "reconnecting", retryAt: Date.now() + delay, attempt });
      retryTimer = setTimeout(connect, delay);
    };

    const onFrame = (event: MessageEvent) => {
      let frame: DashboardServerFrame;
      try {
        frame = DashboardServerFrame.parse(JSON.parse(String(event.data)));
      } catch {
        return;
      }
      if (frame.type === "hello") {
        attempt = 0;
        setStatus({ state: "live" });
        if (connectedBefore) void mutate(() => true);
        connectedBefore = true;
        return;
      }
      applyUpdateFrame(frame, patcher, scheduler);
    };

    async function connect() {
      clearTimeout(retryTimer);
      if (stopped) return;
      if (attempt === 0 && !connectedBefore) setStatus({ state: "connecting" });
      let ticket: string;
      try {
        ticket = (await callApi(authRoutes.wsTicket)).ticket;
      } catch (error) {
        // A refused session is handled by the dashboard layout (back to sign-in).
        if (!(error instanceof ApiError && error.status === 401)) scheduleReconnect();
        return;
      }
      if (stopped) return;
      const current = new WebSocket(dashboardSocketUrl, [DASHBOARD_WS_PROTOCOL, `${WS_TICKET_PROTOCOL_PREFIX}${ticket}`]);
      socket = current;
      current.onmessage = onFrame;
      current.onopen = () => {
        keepaliveTimer = setInterval(() => current.readyState === WebSocket.OPEN && current.send(JSON.stringify(keepalive)), KEEPALIVE_MS);
      };
      current.onclose = () => {
        clearInterval(keepaliveTimer);
        if (socket === current) scheduleReconnect();
      };
    }

    connectRef.current = () => {
      if (socket?.readyState === WebSocket.OPEN || socket?.readyState === WebSocket.CONNECTING) return;
      attempt = 0;
      void connect();
    };
    const reconnectWhenBack = () => {
      if (document.visibilityState === "visible") connectRef.current();
    };
    window.addEventListener("online", reconnectWhenBack);
    document.addEventListener("visibilitychange", reconnectWhenBack);
    void connect();

    return () => {
      stopped = true;
      clearTimeout(retryTimer);
      clearInterval(keepaliveTimer);
      scheduler.cancelAll();
      window.removeEventListener("online", reconnectWhenBack);
      document.removeEventListener("visibilitychange", reconnectWhenBack);
      const current = socket;
      socket = undefined;
      current?.close(1000, "dashboard closed");
    };
  }, [mutate, patcher]);

  const reconnectNow = useCallback(() => connectRef.current(), []);
  // While frames cannot arrive, what is on screen is refreshed by polling instead.
  return (
    <LiveContext value={{ status, reconnectNow }}>
      <SWRConfig value={{ refreshInterval: status.state === "live" ? 0 : POLL_WHILE_DISCONNECTED_MS, use: [patcher.middleware] }}>{children}</SWRConfig>
    </LiveContext>
  );
}

export function useLiveStatus(): LiveContextValue {
  return useContext(LiveContext);
}
