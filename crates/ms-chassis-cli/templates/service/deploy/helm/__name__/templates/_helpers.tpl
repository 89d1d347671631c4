{{/*
Names, labels, and what the chart reads from the service's own config.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "[[ name ]].name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The objects' name: the release's, when it already holds the chart's name (`helm install
[[ name ]] ...` gives `[[ name ]]`), else release-chart. 63 characters at most (DNS-1123 label).
*/}}
{{- define "[[ name ]].fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The full name with a suffix, still within 63 characters. */}}
{{- define "[[ name ]].suffixed" -}}
{{- $base := include "[[ name ]].fullname" .root | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base .suffix }}
{{- end }}

{{- define "[[ name ]].chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "[[ name ]].selectorLabels" -}}
app.kubernetes.io/name: {{ include "[[ name ]].name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "[[ name ]].labels" -}}
helm.sh/chart: {{ include "[[ name ]].chart" . }}
{{ include "[[ name ]].selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "[[ name ]].serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "[[ name ]].fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "[[ name ]].image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the config files and the key are, in the container (the image's own paths). */}}
{{- define "[[ name ]].configDir" -}}
/etc/[[ name ]]
{{- end }}

{{/*
The Secret holding key.key, or "" when no key is mounted. keyFile.content and
keyFile.existingSecret exclude each other.
*/}}
{{- define "[[ name ]].keySecretName" -}}
{{- if and .Values.keyFile.content .Values.keyFile.existingSecret }}
{{- fail "keyFile: give keyFile.content (the chart makes the Secret) or keyFile.existingSecret (a Secret that exists), not both" }}
{{- end }}
{{- if .Values.keyFile.existingSecret }}
{{- .Values.keyFile.existingSecret }}
{{- else if .Values.keyFile.content }}
{{- include "[[ name ]].suffixed" (dict "root" . "suffix" "key") }}
{{- end }}
{{- end }}

{{/*
The service's config as it runs here: files/config.yaml with files/config.prod.yaml merged
over it (MS_PROFILE=prod), as YAML. The ports, probe paths and shutdown timing below come
from it, so they cannot drift from what the service does.
*/}}
{{- define "[[ name ]].config" -}}
{{- $base := .Files.Get "files/config.yaml" | fromYaml }}
{{- $prod := .Files.Get "files/config.prod.yaml" | fromYaml }}
{{- if hasKey $base "Error" }}
{{- fail (printf "files/config.yaml: %s" $base.Error) }}
{{- end }}
{{- if hasKey $prod "Error" }}
{{- fail (printf "files/config.prod.yaml: %s" $prod.Error) }}
{{- end }}
{{- mustMergeOverwrite (dict) $base $prod | toYaml }}
{{- end }}

{{/* server.port (the chassis's default: 8080). */}}
{{- define "[[ name ]].httpPort" -}}
{{- $config := include "[[ name ]].config" . | fromYaml }}
{{- dig "server" "port" 8080 $config | int }}
{{- end }}

{{/* server.management.port (default 9090), or "" when there is no management listener. */}}
{{- define "[[ name ]].managementPort" -}}
{{- $config := include "[[ name ]].config" . | fromYaml }}
{{- $management := dig "server" "management" nil $config }}
{{- if kindIs "map" $management }}
{{- dig "port" 9090 $management | int }}
{{- end }}
{{- end }}

{{/* The container port's name the chassis endpoints (health, metrics) are on. */}}
{{- define "[[ name ]].probePortName" -}}
{{- if include "[[ name ]].managementPort" . }}management{{ else }}http{{ end }}
{{- end }}

{{/* ...and its number. */}}
{{- define "[[ name ]].probePort" -}}
{{- include "[[ name ]].managementPort" . | default (include "[[ name ]].httpPort" .) }}
{{- end }}

{{/* metrics.path (default /metrics), or "" when metrics.enabled is false. */}}
{{- define "[[ name ]].metricsPath" -}}
{{- $config := include "[[ name ]].config" . | fromYaml }}
{{- if dig "metrics" "enabled" true $config }}
{{- dig "metrics" "path" "/metrics" $config }}
{{- end }}
{{- end }}

{{/*
A config duration ("5s", "250ms", "1m 30s", "0") in whole seconds, rounded up. Called with
(list "key.name" value) so that an error names the key.
*/}}
{{- define "[[ name ]].seconds" -}}
{{- $key := index . 0 }}
{{- $text := index . 1 | toString | trim }}
{{- $units := dict "ms" 1 "msec" 1 "s" 1000 "sec" 1000 "secs" 1000 "m" 60000 "min" 60000 "mins" 60000 "h" 3600000 "hr" 3600000 "hrs" 3600000 "d" 86400000 }}
{{- if eq $text "0" }}
{{- 0 }}
{{- else if regexMatch "^([0-9]+ *(ms|msec|s|sec|secs|m|min|mins|h|hr|hrs|d) *)+$" $text }}
{{- $ms := 0 }}
{{- range regexFindAll "[0-9]+ *[a-z]+" $text -1 }}
{{- $count := regexFind "^[0-9]+" . | atoi }}
{{- $unit := regexReplaceAll "^[0-9]+ *" . "" }}
{{- $ms = add $ms (mul $count (get $units $unit)) }}
{{- end }}
{{- div (add $ms 999) 1000 }}
{{- else }}
{{- fail (printf "%s: %q is not a duration the chart can read (use e.g. 5s, 250ms, 1m 30s)" $key $text) }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop sleep, then the service's drain_delay and grace
(server.shutdown, chassis defaults 5s and 30s), plus a margin for closing the management
listener and flushing traces.
*/}}
{{- define "[[ name ]].terminationGracePeriodSeconds" -}}
{{- $config := include "[[ name ]].config" . | fromYaml }}
{{- $drain := include "[[ name ]].seconds" (list "server.shutdown.drain_delay" (dig "server" "shutdown" "drain_delay" "5s" $config)) | int }}
{{- $grace := include "[[ name ]].seconds" (list "server.shutdown.grace" (dig "server" "shutdown" "grace" "30s" $config)) | int }}
{{- add .Values.shutdown.preStopSleepSeconds $drain $grace .Values.shutdown.marginSeconds }}
{{- end }}
