import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Deployment } from "kubernetes-models/apps/v1";
import { ConfigMap, Secret, Service } from "kubernetes-models/v1";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import type { z } from "zod";
import { gatewayConfigShape } from "../../gateway/config.js";
import { llmConfigShape } from "../../processors/llm/config.js";
import { breakerConfigShape } from "../../processors/breaker/config.js";
import { tracesConfigShape } from "../../processors/traces/config.js";
import { mcpConfigShape } from "../../processors/mcp/config.js";
import { webhookPusherConfigShape } from "../../processors/webhook-pusher/config.js";
import { processorConfigShape } from "../../processors/runtime/config.js";

const root = join(import.meta.dirname, "../..");

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: { template?: { spec?: PodSpec } };
}
interface PodSpec {
  containers?: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number };
  volumes?: { name: string; emptyDir?: unknown }[];
}
interface Container {
  name: string;
  command?: string[];
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
  volumeMounts?: { name: string; mountPath: string }[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  envFrom?: { configMapRef?: { name: string } }[];
}

/** Each kind we ship, checked against the Kubernetes OpenAPI schemas (kubernetes-models). */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "v1/Service": Service,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "networking.k8s.io/v1/Ingress": Ingress,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};

function render(overlay: string): K8sObject[] {
  const text = execFileSync("kubectl", ["kustomize", join(root, "deploy/kubernetes/overlays", overlay)], { encoding: "utf8" });
  return parseAllDocuments(text).map((doc) => doc.toJSON() as K8sObject);
}

/** The variables a service reads, and those among them with no default (which a manifest must set). */
function variables(shape: z.ZodRawShape): { known: Set<string>; required: string[] } {
  const known = new Set(Object.keys(shape));
  const required = Object.entries(shape)
    .filter(([, schema]) => !(schema as z.ZodType).safeParse(undefined).success)
    .map(([name]) => name);
  return { known, required };
}

const SERVICES: Record<string, { entry: string; shape: z.ZodRawShape; mustSet: string[] }> = {
  gateway: { entry: "gateway/main.ts", shape: gatewayConfigShape, mustSet: ["NATS_URL", "GATEWAY_HOST", "GATEWAY_PORT", "AUTH", "AUTH_JWT_SECRET", "SECRETS_KEYS", "EVENTS_REPLICAS"] },
  breaker: { entry: "processors/breaker/main.ts", shape: { ...processorConfigShape, ...breakerConfigShape }, mustSet: ["NATS_URL", "HEALTH_HOST", "HEALTH_PORT", "EVENTS_REPLICAS"] },
  scheduler: { entry: "processors/scheduler/main.ts", shape: processorConfigShape, mustSet: ["NATS_URL", "HEALTH_HOST", "HEALTH_PORT", "EVENTS_REPLICAS"] },
  "webhook-pusher": { entry: "processors/webhook-pusher/main.ts", shape: { ...processorConfigShape, ...webhookPusherConfigShape }, mustSet: ["NATS_URL", "HEALTH_HOST", "HEALTH_PORT", "EVENTS_REPLICAS", "SECRETS_KEYS"] },
  llm: { entry: "processors/llm/main.ts", shape: { ...processorConfigShape, ...llmConfigShape }, mustSet: ["NATS_URL", "HEALTH_HOST", "HEALTH_PORT", "EVENTS_REPLICAS", "LLM_BASE_URL", "LLM_API_KEY"] },
  traces: { entry: "processors/traces/main.ts", shape: { ...processorConfigShape, ...tracesConfigShape }, mustSet: ["NATS_URL", "HEALTH_HOST", "HEALTH_PORT", "EVENTS_REPLICAS", "OTEL_EXPORTER_OTLP_ENDPOINT"] },
  mcp: { entry: "processors/mcp/main.ts", shape: { ...processorConfigShape, ...mcpConfigShape }, mustSet: ["NATS_URL", "HEALTH_HOST", "HEALTH_PORT", "EVENTS_REPLICAS", "SECRETS_KEYS"] },
};

/** The user deploy/Dockerfile runs as (`USER uid:gid`): the manifests run the same one, by number. */
function imageUser(): { uid: number; gid: number } {
  const match = /^USER (\d+):(\d+)$/m.exec(readFileSync(join(root, "deploy/Dockerfile"), "utf8"));
  if (match === null) throw new Error("deploy/Dockerfile has no numeric USER uid:gid");
  return { uid: Number(match[1]), gid: Number(match[2]) };
}

describe.each(["dev", "production"])("kubernetes overlay %s", (overlay) => {
  const objects = render(overlay);

  it("renders objects that are all valid against the Kubernetes schemas", () => {
    expect(objects.length).toBeGreaterThanOrEqual(9);
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      expect(Model, `${object.apiVersion} ${object.kind} has no model here`).toBeDefined();
      expect(() => {
        new (Model as new (data: K8sObject) => { validate(): void })(object).validate();
      }, `${object.kind}/${object.metadata.name}`).not.toThrow();
    }
  });

  it("gives every service the variables it needs, and only variables it knows", () => {
    const configMaps = new Map(objects.filter((o) => o.kind === "ConfigMap").map((o) => [o.metadata.name, o.data ?? {}]));
    const everyKnown = new Set(Object.values(SERVICES).flatMap((service) => [...variables(service.shape).known]));
    for (const [configMap, data] of configMaps) {
      for (const key of Object.keys(data)) expect(everyKnown.has(key), `${configMap}: no service reads ${key}`).toBe(true);
    }
    for (const [name, service] of Object.entries(SERVICES)) {
      const deployment = objects.find((o) => o.kind === "Deployment" && o.metadata.name === name);
      const container = deployment?.spec?.template?.spec?.containers?.[0];
      expect(container, `Deployment ${name}`).toBeDefined();
      expect(container?.command?.at(-1)).toBe(service.entry);
      const explicit = container?.env?.map((e) => e.name) ?? [];
      const values = new Map<string, string | undefined>();
      for (const from of container?.envFrom ?? []) {
        const data = configMaps.get(from.configMapRef?.name ?? "");
        expect(data, `ConfigMap ${from.configMapRef?.name ?? ""}`).toBeDefined();
        for (const [key, value] of Object.entries(data ?? {})) values.set(key, value);
      }
      for (const entry of container?.env ?? []) values.set(entry.name, entry.value);
      const { known, required } = variables(service.shape);
      for (const variable of [...required, ...service.mustSet]) expect(values.has(variable), `${name} needs ${variable}`).toBe(true);
      // A variable set on one service alone must be one it reads: a typo would silently fall back to a default.
      for (const variable of explicit) expect(known.has(variable), `${name} does not read ${variable}`).toBe(true);
      // The manifests never turn access control off.
      if (name === "gateway") expect(values.get("AUTH")).toBe("jwt");
    }
  });

  it("runs every service as the image does: its non-root user, a read-only root filesystem, a writable /tmp", () => {
    // The image test (test/integration/image.test.ts) runs every service this way; /tmp holds tsx's compile cache.
    const user = imageUser();
    for (const name of Object.keys(SERVICES)) {
      const pod = objects.find((o) => o.kind === "Deployment" && o.metadata.name === name)?.spec?.template?.spec;
      expect(pod?.securityContext, name).toMatchObject({ runAsNonRoot: true, runAsUser: user.uid, runAsGroup: user.gid });
      const container = pod?.containers?.[0];
      expect(container?.command?.slice(0, 3), name).toEqual(["node", "--import", "tsx"]);
      expect(container?.securityContext, name).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
      const tmp = container?.volumeMounts?.find((m) => m.mountPath === "/tmp");
      expect(tmp, `${name} mounts a writable /tmp`).toBeDefined();
      expect(pod?.volumes?.find((v) => v.name === tmp?.name)?.emptyDir, `${name}: /tmp is an emptyDir`).toBeDefined();
    }
  });
});
