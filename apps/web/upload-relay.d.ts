// Types of upload-relay.js (plain JavaScript, as server.js runs under node without a build).
import type { IncomingMessage, ServerResponse } from "node:http";

export function apiOfBuild(dir: string): string;
export function isUpload(req: IncomingMessage): boolean;
export function relayUpload(req: IncomingMessage, res: ServerResponse, api: string): void;
