// proxy-addr (Express's own dependency) ships no types.
declare module "proxy-addr" {
  import type { IncomingMessage } from "node:http";
  type Trust = (address: string, hop: number) => boolean;
  function proxyaddr(req: IncomingMessage, trust: Trust): string;
  namespace proxyaddr {
    function compile(addresses: string | string[]): Trust;
  }
  export = proxyaddr;
}
