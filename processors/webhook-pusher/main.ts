import { runProcessorMain } from "../runtime/run-processor.js";
import { WEBHOOK_PUSHER_NAME } from "./processor.js";
import { buildWebhookPusher } from "./service.js";

runProcessorMain(WEBHOOK_PUSHER_NAME, (deps) => buildWebhookPusher(deps, process.env));
