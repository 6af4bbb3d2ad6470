import { z } from "zod";

// The page's CSP allows no eval, so zod must not try to compile its checks with new Function. A module of its
// own, imported first: the schemas of the contract are built while the app's modules load.
z.config({ jitless: true });
