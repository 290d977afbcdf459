-- Macros the merge's files share (imported, never run: this file has no statements).

{#- The rows of a staging table that validation let through, with their submission's time, chosen in
    a subquery of their own (OFFSET 0 keeps it apart): a plan, parallel ones above all, may otherwise
    compute a cast before the join that drops a rejected row (2026-02-30 as a date). -#}
{% macro accepted(table, file_name) -%}
(SELECT s.*, sub.submitted_at
      FROM staging.{{ table }} s
      JOIN ingest.submission sub ON sub.submission_pk = s.submission_pk AND sub.status = 'VALIDATED'
      WHERE s.round_seq = %(round_seq)s
        AND NOT EXISTS (SELECT 1 FROM quality.rejection q WHERE q.round_seq = %(round_seq)s
                        AND q.submission_pk = s.submission_pk AND q.file_name = '{{ file_name }}' AND q.line_no = s.line_no)
      OFFSET 0) s
{%- endmacro %}
