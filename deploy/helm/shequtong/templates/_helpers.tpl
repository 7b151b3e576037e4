{{/*
The fixed facts about each service, the chart's single source of them:
  package        its Python package (`python -m <package>`; `… migrate` when it has a database)
  grpc, http     whether it serves gRPC (probed by grpc.health.v1) and/or HTTP
  database       it owns a PostgreSQL database: DATABASE_URL, the <svc>-database-url secret
                 key, a migration hook Job, PostgreSQL egress. api-gateway is stateless.
  nats           it publishes/consumes events (api-gateway: follows identity.session.revoked):
                 NATS_URL and NATS egress
  clientCredentials  it authenticates to identity as a machine client: SERVICE_CLIENT_ID/
                 SECRET, the <svc>-client-secret key and its entry in SERVICE_ACCOUNTS
  calls          the other services it calls over gRPC: the *_ADDR variables, the
                 NetworkPolicy egress of the caller and the ingress of the callee
tests/chart checks these against the services themselves (settings, migrations, call graph).
*/}}
{{- define "shequtong.catalog" -}}
identity:
  package: shequtong_identity
  grpc: true
  http: false
  database: true
  nats: true
  clientCredentials: true
  calls: []
boards:
  package: shequtong_boards
  grpc: true
  http: false
  database: true
  nats: true
  clientCredentials: true
  calls: [identity]
issues:
  package: shequtong_issues
  grpc: true
  http: false
  database: true
  nats: true
  clientCredentials: true
  calls: [identity]
grid-gateway:
  package: shequtong_grid_gateway
  grpc: true
  http: true
  database: true
  nats: true
  clientCredentials: true
  calls: [identity]
volunteers:
  package: shequtong_volunteers
  grpc: true
  http: false
  database: true
  nats: true
  clientCredentials: true
  calls: [identity]
insights:
  package: shequtong_insights
  grpc: true
  http: false
  database: true
  nats: true
  clientCredentials: true
  calls: [identity]
api-gateway:
  package: shequtong_api_gateway
  grpc: false
  http: true
  database: false
  nats: true
  clientCredentials: false
  calls: [identity, boards, issues, grid-gateway, volunteers, insights]
{{- end -}}

{{- define "shequtong.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-shequtong, or the release name alone when it already says shequtong. */}}
{{- define "shequtong.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "shequtong.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "shequtong.labels" -}}
helm.sh/chart: {{ include "shequtong.chart" . }}
app.kubernetes.io/name: {{ include "shequtong.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shequtong
{{- end -}}

{{/* Pods of the release (the deny-all policy selects these). */}}
{{- define "shequtong.releaseSelector" -}}
app.kubernetes.io/name: {{ include "shequtong.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector of one service's pods: dict "root" $ "name" <service>. */}}
{{- define "shequtong.selectorLabels" -}}
{{ include "shequtong.releaseSelector" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Name of a service's Deployment, Service and ServiceAccount: dict "root" $ "name" <service>. */}}
{{- define "shequtong.serviceName" -}}
{{- printf "%s-%s" (include "shequtong.fullname" .root) .name -}}
{{- end -}}

{{- define "shequtong.secretName" -}}
{{- if .Values.global.secrets.existingSecret -}}
{{- .Values.global.secrets.existingSecret -}}
{{- else -}}
{{- printf "%s-secrets" (include "shequtong.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* <registry>/<repository>/<service>:<tag>[@<digests[service]>]: dict "root" $ "name" <service>. */}}
{{- define "shequtong.image" -}}
{{- $img := .root.Values.global.image -}}
{{- $tag := $img.tag | default .root.Chart.AppVersion -}}
{{- $ref := printf "%s/%s/%s:%s" $img.registry $img.repository .name $tag -}}
{{- $digest := get ($img.digests | default dict) .name -}}
{{- if $digest -}}{{- $ref = printf "%s@%s" $ref $digest -}}{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* SCREAMING_SNAKE of a service name: grid-gateway -> GRID_GATEWAY. */}}
{{- define "shequtong.envName" -}}
{{- . | replace "-" "_" | upper -}}
{{- end -}}

{{/* The HTTP port of a gateway (api-gateway: port; grid-gateway: httpPort). */}}
{{- define "shequtong.httpPort" -}}
{{- if eq .name "api-gateway" -}}{{ .svc.port }}{{- else -}}{{ .svc.httpPort }}{{- end -}}
{{- end -}}

{{/*
The environment of a service's container (Deployment and migration Job alike):
dict "root" $ "name" <service> "svc" <values block> "info" <catalog entry>.
*/}}
{{- define "shequtong.env" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $svc := .svc -}}
{{- $info := .info -}}
{{- $secret := include "shequtong.secretName" $root -}}
{{- $g := $root.Values.global -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: NODE_NAME
  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
{{- if $info.database }}
- name: DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $name }}-database-url}}
{{- end }}
{{- if $info.nats }}
- name: NATS_URL
  value: {{ $g.nats.url | quote }}
{{- end }}
{{- if $info.grpc }}
- name: GRPC_PORT
  value: {{ $svc.port | quote }}
{{- end }}
{{- if $info.http }}
- name: HTTP_PORT
  value: {{ include "shequtong.httpPort" . | quote }}
{{- end }}
- name: METRICS_PORT
  value: {{ $g.metrics.port | quote }}
- name: LOG_LEVEL
  value: {{ $g.logLevel | quote }}
{{- if $g.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $g.otel.endpoint | quote }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ $name | quote }}
{{- $attrs := list "service.namespace=shequtong" (printf "service.version=%s" ($g.image.tag | default $root.Chart.AppVersion)) "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.pod.name=$(POD_NAME)" "k8s.node.name=$(NODE_NAME)" }}
{{- range $k, $v := $g.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k (toString $v)) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- if $info.clientCredentials }}
- name: SERVICE_CLIENT_ID
  value: {{ $name | quote }}
- name: SERVICE_CLIENT_SECRET
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $name }}-client-secret}}
{{- end }}
{{- /* Every service a service calls is required: the services fail at start without its
address (api-gateway's settings require all six, and its /readyz waits for all). */}}
{{- range $dep := $info.calls }}
{{- $depSvc := get $root.Values.services $dep }}
{{- if not $depSvc.enabled }}
{{- fail (printf "services.%s needs services.%s (it calls %s and will not start without its address): enable %s or disable %s" $name $dep $dep $dep $name) }}
{{- end }}
- name: {{ include "shequtong.envName" $dep }}_ADDR
  value: {{ printf "%s:%v" (include "shequtong.serviceName" (dict "root" $root "name" $dep)) $depSvc.port | quote }}
{{- end }}
{{- if eq $name "grid-gateway" }}
- name: GRID_BASE_URL
  value: {{ $svc.gridBaseUrl | quote }}
- name: GRID_API_KEY
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: grid-api-key}}
- name: GRID_WEBHOOK_SECRET
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: grid-webhook-secret}}
- name: GRID_WEBHOOK_API_KEY
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: grid-webhook-api-key}}
{{- end }}
{{- if eq $name "identity" }}
- name: IDENTITY_SIGNING_KEYS
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: identity-signing-keys}}
- name: PII_HMAC_KEY
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: pii-hmac-key}}
- name: PII_ENCRYPTION_KEY
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: pii-encryption-key}}
- name: SERVICE_ACCOUNTS
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: service-accounts}}
{{- end }}
{{- $reserved := list "POD_NAME" "POD_NAMESPACE" "NODE_NAME" "DATABASE_URL" "NATS_URL" "GRPC_PORT" "HTTP_PORT" "METRICS_PORT" "LOG_LEVEL" "OTEL_EXPORTER_OTLP_ENDPOINT" "OTEL_SERVICE_NAME" "OTEL_RESOURCE_ATTRIBUTES" "SERVICE_CLIENT_ID" "SERVICE_CLIENT_SECRET" "GRID_BASE_URL" "GRID_API_KEY" "GRID_WEBHOOK_SECRET" "GRID_WEBHOOK_API_KEY" "IDENTITY_SIGNING_KEYS" "PII_HMAC_KEY" "PII_ENCRYPTION_KEY" "SERVICE_ACCOUNTS" }}
{{- range $k, $v := $svc.env }}
{{- if or (has $k $reserved) (hasSuffix "_ADDR" $k) }}
{{- fail (printf "services.%s.env.%s is set by the chart; change it through its own value instead" $name $k) }}
{{- end }}
- name: {{ $k }}
  value: {{ toString $v | quote }}
{{- end }}
{{- end -}}

{{/* The hardened pod securityContext. */}}
{{- define "shequtong.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The hardened container securityContext. */}}
{{- define "shequtong.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
