// jsdom lacks the encoders the contracts use at import time; Node has them.
const { TextDecoder, TextEncoder } = require("node:util");
Object.assign(globalThis, { TextDecoder, TextEncoder });
