{{/*
Names. Every object's name starts with vane.fullname; components add -operator, -proxy,
-webhook. The prefix is cut at 40 characters so that "<prefix>-operator-admin" and the like
stay valid DNS labels (63). Cluster-scoped objects (ClusterRoles and their bindings, the
ValidatingWebhookConfiguration) also carry the release namespace, so one release name in two
namespaces never collides.
*/}}
{{- define "vane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "vane.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vane.operator.fullname" -}}{{ include "vane.fullname" . }}-operator{{- end }}
{{- define "vane.operator.adminService" -}}{{ include "vane.fullname" . }}-operator-admin{{- end }}
{{- define "vane.operator.leaseName" -}}{{ .Values.operator.leaseName | default (include "vane.operator.fullname" .) }}{{- end }}
{{- define "vane.operator.streamSecret" -}}{{ include "vane.fullname" . }}-stream-tls{{- end }}
{{- define "vane.operator.streamCaConfigMap" -}}{{ include "vane.fullname" . }}-stream-ca{{- end }}
{{- define "vane.operator.clusterName" -}}{{ include "vane.operator.fullname" . }}-{{ .Release.Namespace }}{{- end }}
{{- define "vane.proxy.fullname" -}}{{ include "vane.fullname" . }}-proxy{{- end }}
{{- define "vane.proxy.adminService" -}}{{ include "vane.fullname" . }}-proxy-admin{{- end }}
{{- define "vane.webhook.fullname" -}}{{ include "vane.fullname" . }}-webhook{{- end }}
{{- define "vane.webhook.secret" -}}{{ include "vane.fullname" . }}-webhook-tls{{- end }}
{{- define "vane.webhook.configName" -}}{{ include "vane.webhook.fullname" . }}-{{ .Release.Namespace }}{{- end }}
{{- define "vane.webhook.clusterName" -}}{{ include "vane.webhook.fullname" . }}-{{ .Release.Namespace }}{{- end }}

{{/* The operator's stream URL, as proxies dial it. */}}
{{- define "vane.operator.streamUrl" -}}
wss://{{ include "vane.operator.fullname" . }}.{{ .Release.Namespace }}.svc:7443/stream
{{- end }}

{{- define "vane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels: call with (dict "ctx" $ "component" "operator"). Selectors use only name, instance
and component, which never change between releases (selectors are immutable).
*/}}
{{- define "vane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vane.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "vane.labels" -}}
{{ include "vane.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: vane
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "vane.chart" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The one image every component runs. */}}
{{- define "vane.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Soft anti-affinity by hostname: spread replicas over nodes, but a one-node cluster still schedules them all. */}}
{{- define "vane.affinity" -}}
{{- if .affinity }}
{{- toYaml .affinity }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "vane.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- end }}
{{- end }}

{{/* Pod-spec fields every component shares: call with (dict "ctx" $ "values" .Values.operator). */}}
{{- define "vane.podCommon" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* A pod's metadata: labels (selector labels + common + podLabels) and annotations. */}}
{{- define "vane.podMetadata" -}}
labels:
  {{- include "vane.labels" (dict "ctx" .ctx "component" .component) | nindent 2 }}
  {{- with .values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Validation that the schema cannot express. */}}
{{- define "vane.validate" -}}
{{- $p := .Values.proxy }}
{{- if and (eq $p.kind "DaemonSet") $p.autoscaling.enabled }}
{{- fail "proxy.autoscaling.enabled: a HorizontalPodAutoscaler cannot scale a DaemonSet; use proxy.kind Deployment or turn autoscaling off" }}
{{- end }}
{{- if and $p.autoscaling.enabled (gt (int $p.autoscaling.minReplicas) (int $p.autoscaling.maxReplicas)) }}
{{- fail (printf "proxy.autoscaling.minReplicas (%d) must not exceed proxy.autoscaling.maxReplicas (%d)" (int $p.autoscaling.minReplicas) (int $p.autoscaling.maxReplicas)) }}
{{- end }}
{{- $busy := add (int $p.shutdownDelaySeconds) (int $p.drainTimeoutSeconds) }}
{{- if and (gt (int $p.terminationGracePeriodSeconds) 0) (le (int $p.terminationGracePeriodSeconds) $busy) }}
{{- fail (printf "proxy.terminationGracePeriodSeconds (%d) must be greater than proxy.shutdownDelaySeconds + proxy.drainTimeoutSeconds (%d), or the kubelet kills proxies mid-drain" (int $p.terminationGracePeriodSeconds) $busy) }}
{{- end }}
{{- if and $p.service.externalTrafficPolicy (eq $p.service.type "ClusterIP") }}
{{- fail "proxy.service.externalTrafficPolicy: only a NodePort or LoadBalancer Service has one; leave it empty with type ClusterIP" }}
{{- end }}
{{- if and (eq $p.service.type "ClusterIP") (or $p.service.nodePorts.http $p.service.nodePorts.https) }}
{{- fail "proxy.service.nodePorts: a ClusterIP Service has no node ports; use type NodePort or LoadBalancer" }}
{{- end }}
{{- if and $p.proxyProtocol (not $p.proxyProtocolPeers) }}
{{- fail "proxy.proxyProtocolPeers: needed with proxy.proxyProtocol, the CIDRs of the load balancers that send PROXY headers" }}
{{- end }}
{{- end }}

{{/* The proxies' termination grace period: given, or the shutdown delay plus the drain timeout plus 10 s. */}}
{{- define "vane.proxy.terminationGracePeriodSeconds" -}}
{{- $p := .Values.proxy }}
{{- if gt (int $p.terminationGracePeriodSeconds) 0 }}
{{- int $p.terminationGracePeriodSeconds }}
{{- else }}
{{- add (int $p.shutdownDelaySeconds) (int $p.drainTimeoutSeconds) 10 }}
{{- end }}
{{- end }}

{{/* Who may reach the admin/metrics ports: networkPolicy.adminFrom, and this release's `helm test` pods. */}}
{{- define "vane.networkPolicy.adminPeers" -}}
- namespaceSelector:
    {{- toYaml (.adminFrom.namespaceSelector | default dict) | nindent 4 }}
  podSelector:
    {{- toYaml (.adminFrom.podSelector | default dict) | nindent 4 }}
# This release's `helm test` pods.
- podSelector:
    matchLabels:
      {{- include "vane.selectorLabels" (dict "ctx" .ctx "component" "test") | nindent 6 }}
{{- end }}
