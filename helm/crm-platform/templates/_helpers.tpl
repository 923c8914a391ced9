{{/*
Every template loops over `.Values.services` and builds, per service, a context:
  root  the chart's top-level context ($)
  name  the service's name (= its folder in services/, its binary, its image)
  svc   the service's own block from values
  s     the defaults with the service's block merged over them (see crm.mergeInto)
*/}}

{{/*
Merges .src into the map .dst in place, recursively: maps are merged key by key,
everything else (including false, 0 and empty lists) replaces the value in .dst.
Sprig's mergeOverwrite is not used because it skips "empty" values, so a service
could not turn autoscaling off (enabled: false) over a default of true.
Prints nothing: `{{- include "crm.mergeInto" (dict "dst" $d "src" $s) }}`.
*/}}
{{- define "crm.mergeInto" -}}
{{- $dst := .dst -}}
{{- range $k, $v := .src -}}
{{- if and (kindIs "map" $v) (kindIs "map" (get $dst $k)) -}}
{{- include "crm.mergeInto" (dict "dst" (get $dst $k) "src" $v) -}}
{{- else -}}
{{- $_ := set $dst $k $v -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one service's objects: <release>-<service>. */}}
{{- define "crm.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Environment prefix the service reads: customer-profile → CRM_CUSTOMER_PROFILE. */}}
{{- define "crm.envPrefix" -}}
{{- printf "CRM_%s" (.name | upper | replace "-" "_") -}}
{{- end -}}

{{/* Database name of a service: its `databaseName`, else crm_<service in snake case>. */}}
{{- define "crm.databaseName" -}}
{{- .svc.databaseName | default (printf "crm_%s" (.name | replace "-" "_")) -}}
{{- end -}}

{{/* Labels that identify one service's server pods (Deployment, Service, PDB selectors). */}}
{{- define "crm.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{/* Labels common to every object of one service (without the component). */}}
{{- define "crm.commonLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: crm-platform
app.kubernetes.io/version: {{ include "crm.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* All labels of one service's server objects. */}}
{{- define "crm.labels" -}}
{{ include "crm.commonLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{/* Labels of one service's migration Job, its pod and its NetworkPolicy. */}}
{{- define "crm.migrationLabels" -}}
{{ include "crm.commonLabels" . }}
app.kubernetes.io/component: migration
{{- end -}}

{{/* Name of the Secret holding a service's URLs and keys. */}}
{{- define "crm.secretName" -}}
{{- .svc.existingSecret | default (include "crm.fullname" .) -}}
{{- end -}}

{{/* Whether the chart creates this service's Secret ("true" or ""). */}}
{{- define "crm.createsSecret" -}}
{{- if and .root.Values.secrets.create (not .svc.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* Image tag of a service: its own `image.tag`, else image.tag, else appVersion. */}}
{{- define "crm.imageTag" -}}
{{- $own := .svc.image | default dict -}}
{{- $own.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- end -}}

{{/* Image of a service: <registry>/<prefix><service>:<tag>, or its own `image.repository`. */}}
{{- define "crm.image" -}}
{{- $img := .root.Values.image -}}
{{- $own := .svc.image | default dict -}}
{{- $repo := $own.repository | default (printf "%s/%s%s" $img.registry $img.prefix .name) -}}
{{- printf "%s:%s" $repo (include "crm.imageTag" .) -}}
{{- end -}}

{{/*
The service's non-secret configuration, as a YAML map of environment variables
(the ConfigMap's data; the migration Job gets the same variables inline, because a
pre-install hook runs before the ConfigMap exists). Names follow the services'
contract: CRM_<SERVICE>__<SECTION>__<KEY>. Per-service `config` entries come last and
may override the chart's values (the schema refuses the keys the chart must own).
*/}}
{{- define "crm.configData" -}}
{{- $s := .s -}}
{{- $p := include "crm.envPrefix" . -}}
{{- $t := .root.Values.telemetry -}}
{{- $d := dict -}}
{{- $_ := set $d (printf "%s__GRPC__HOST" $p) "0.0.0.0" -}}
{{- $_ := set $d (printf "%s__GRPC__PORT" $p) "50051" -}}
{{- $_ := set $d (printf "%s__GRPC__REQUEST_TIMEOUT_MS" $p) ($s.grpc.requestTimeoutMs | int64 | toString) -}}
{{- $_ := set $d (printf "%s__GRPC__CONCURRENCY_LIMIT" $p) ($s.grpc.concurrencyLimit | int64 | toString) -}}
{{- $_ := set $d (printf "%s__GRPC__SHUTDOWN_GRACE_MS" $p) ($s.grpc.shutdownGraceMs | int64 | toString) -}}
{{- $_ := set $d (printf "%s__DATABASE__MAX_CONNECTIONS" $p) ($s.database.maxConnections | int64 | toString) -}}
{{- /* Migrations run before the server: as a hook Job or as an init container. */ -}}
{{- $_ := set $d (printf "%s__DATABASE__MIGRATE_ON_START" $p) "false" -}}
{{- $_ := set $d (printf "%s__DATABASE__CREATE_IF_MISSING" $p) ($s.database.createIfMissing | toString) -}}
{{- $_ := set $d (printf "%s__MESSAGING__EXCHANGE" $p) .root.Values.messaging.exchange -}}
{{- $_ := set $d (printf "%s__MESSAGING__QUEUE_TYPE" $p) .root.Values.messaging.queueType -}}
{{- $_ := set $d (printf "%s__MESSAGING__PREFETCH" $p) ($s.messaging.prefetch | int64 | toString) -}}
{{- $_ := set $d (printf "%s__TELEMETRY__LOG_FORMAT" $p) $t.logFormat -}}
{{- $_ := set $d (printf "%s__TELEMETRY__LOG_FILTER" $p) $t.logFilter -}}
{{- $_ := set $d "OTEL_SERVICE_NAME" .name -}}
{{- if $t.otlpEndpoint -}}
{{- $_ := set $d "OTEL_EXPORTER_OTLP_ENDPOINT" $t.otlpEndpoint -}}
{{- end -}}
{{- /* Callers of identity fetch its token verification keys from its Service. */ -}}
{{- if has "identity" (.svc.callees | default list) -}}
{{- $_ := set $d (printf "%s__AUTH__IDENTITY_ENDPOINT" $p) (printf "http://%s:50051" (include "crm.fullname" (dict "root" .root "name" "identity"))) -}}
{{- end -}}
{{- /* customer-profile's 360° view asks analytics for the value card. */ -}}
{{- if and (eq .name "customer-profile") (has "analytics" (.svc.callees | default list)) -}}
{{- $_ := set $d (printf "%s__CUSTOMER__ANALYTICS__ENDPOINT" $p) (printf "http://%s:50051" (include "crm.fullname" (dict "root" .root "name" "analytics"))) -}}
{{- end -}}
{{- range $key, $value := (.svc.config | default dict) -}}
{{- $_ := set $d (printf "%s__%s" $p $key) (toString $value) -}}
{{- end -}}
{{- toYaml $d -}}
{{- end -}}

{{/*
Environment entries that are not in the ConfigMap, as a YAML list: the secrets (by
secretKeyRef), and the pod's identity for OpenTelemetry resource attributes, so that a
span names the pod, node and namespace it came from.
*/}}
{{- define "crm.podEnv" -}}
{{- $p := include "crm.envPrefix" . -}}
{{- $secret := include "crm.secretName" . -}}
{{- $t := .root.Values.telemetry -}}
{{- $env := list -}}
{{- $env = append $env (dict "name" (printf "%s__DATABASE__URL" $p) "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" "database-url"))) -}}
{{- $env = append $env (dict "name" (printf "%s__MESSAGING__URL" $p) "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" "messaging-url"))) -}}
{{- range $suffix, $key := (.svc.secretEnv | default dict) -}}
{{- $env = append $env (dict "name" (printf "%s__%s" $p $suffix) "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" $key))) -}}
{{- end -}}
{{- $env = append $env (dict "name" "K8S_POD_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.name"))) -}}
{{- $env = append $env (dict "name" "K8S_NAMESPACE_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.namespace"))) -}}
{{- $env = append $env (dict "name" "K8S_NODE_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "spec.nodeName"))) -}}
{{- $attrs := "k8s.namespace.name=$(K8S_NAMESPACE_NAME),k8s.pod.name=$(K8S_POD_NAME),k8s.node.name=$(K8S_NODE_NAME)" -}}
{{- if $t.resourceAttributes -}}
{{- $attrs = printf "%s,%s" $attrs $t.resourceAttributes -}}
{{- end -}}
{{- $env = append $env (dict "name" "OTEL_RESOURCE_ATTRIBUTES" "value" $attrs) -}}
{{- toYaml $env -}}
{{- end -}}

{{/* stringData of a chart-made Secret (secrets.create, development). */}}
{{- define "crm.secretData" -}}
{{- $v := .root.Values.secrets -}}
{{- $d := dict -}}
{{- $url := required "secrets.databaseUrlTemplate is required when secrets.create is true" $v.databaseUrlTemplate -}}
{{- $_ := set $d "database-url" ($url | replace "{database}" (include "crm.databaseName" .)) -}}
{{- $_ := set $d "messaging-url" (required "secrets.messagingUrl is required when secrets.create is true" $v.messagingUrl) -}}
{{- range $suffix, $key := (.svc.secretEnv | default dict) -}}
{{- $_ := set $d $key (required (printf "secrets.values.%s is required when secrets.create is true (for %s)" $key $suffix) (index ($v.values | default dict) $key)) -}}
{{- end -}}
{{- toYaml $d -}}
{{- end -}}

{{/* Pod-level security context: non-root, fixed uid/gid of the distroless image. */}}
{{- define "crm.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context. */}}
{{- define "crm.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod selector of another service's server pods in this release (NetworkPolicy peers). */}}
{{- define "crm.peerSelector" -}}
podSelector:
  matchLabels:
    app.kubernetes.io/name: {{ .peer }}
    app.kubernetes.io/instance: {{ .root.Release.Name }}
    app.kubernetes.io/component: server
{{- end -}}

{{/*
Egress rules to the platform's dependencies, as a YAML list: DNS, then each of the
named dependencies (postgres, rabbitmq, otelCollector) with its peers and port.
*/}}
{{- define "crm.dependencyEgress" -}}
{{- $np := .root.Values.networkPolicy -}}
- ports:
    - { port: 53, protocol: UDP }
    - { port: 53, protocol: TCP }
  {{- with $np.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- range $dep := .dependencies }}
{{- $d := index $np $dep }}
- to:
    {{- toYaml $d.to | nindent 4 }}
  ports:
    - port: {{ $d.port | int }}
      protocol: TCP
{{- end }}
{{- end -}}
