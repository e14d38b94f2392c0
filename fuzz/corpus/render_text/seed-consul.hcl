datacenter = "{{ datacenter }}"
node_name  = "{{ pod_name }}"
server     = true
bootstrap_expect = {{ replicas }}
retry_join = [{% for p in peers %}"{{ p }}"{% if not loop.last %}, {% endif %}{% endfor %}]
{# a comment #}
{%- if ordinal == 0 %}
bootstrap = true
{% endif -%}
{% raw %}{{ not rendered }}{% endraw %}
{% macro url(m) %}http://{{ m.fqdn }}:2380{% endmacro %}
{% for m in members %}{{ m.name }}={{ url(m) }}{{ "," if not loop.last }}{% endfor %}
{{ env.HOME }} {{ "%s-%d"|format(statefulset, ordinal) }} {{ peers|first|upper }}
