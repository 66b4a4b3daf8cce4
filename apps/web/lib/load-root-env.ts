// Imported first by next.config.ts, for its side effect: the root .env must be in process.env
// before lib/config reads NEXT_PUBLIC_API_URL, which it does as soon as it is imported.
import { loadEnvFile } from "./env-file";

loadEnvFile();
