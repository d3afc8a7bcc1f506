// Validates Kubernetes custom resources against their CRDs' schemas, with the validators
// @kubernetes-models generates from them. Reads a JSON array of resources on stdin;
// prints one line per resource; exits 1 when any is invalid or of a kind it does not know.
//   npm ci && node validate-crds.mjs < resources.json
import { readFileSync } from "node:fs";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const MODELS = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

const resources = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const resource of resources) {
  const key = `${resource.apiVersion}/${resource.kind}`;
  const name = `${key} ${resource.metadata?.name}`;
  const Model = MODELS[key];
  if (Model === undefined) {
    console.log(`UNKNOWN ${name}: no schema for this kind`);
    failed += 1;
    continue;
  }
  try {
    new Model(resource).validate();
    console.log(`OK ${name}`);
  } catch (err) {
    console.log(`INVALID ${name}: ${err.message}`);
    failed += 1;
  }
}
process.exit(failed === 0 ? 0 : 1);
