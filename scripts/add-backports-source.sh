#!/usr/bin/env bash
# Adds Debian's bookworm-backports suite to apt's sources, on the same mirror
# (and with the same signing key) as the machine's own bookworm source, so the
# machine's proxy or mirror choice is kept. Does nothing when a
# bookworm-backports source is already there. Reads both source formats:
# deb822 (/etc/apt/sources.list.d/*.sources, Debian 12's default) and one-line
# (/etc/apt/sources.list, *.list).
#
#   scripts/add-backports-source.sh           adds it (needs root), prints the file
#   scripts/add-backports-source.sh --print   prints what it would write, writes nothing
set -euo pipefail

print_only=false
[ "${1:-}" = --print ] && print_only=true
etc="${APT_ETC:-/etc/apt}" # another root, for trying it out

shopt -s nullglob
sources=("$etc"/sources.list.d/*.sources)
lists=("$etc"/sources.list "$etc"/sources.list.d/*.list)
existing=()
for f in "${sources[@]}" "${lists[@]}"; do [ -f "$f" ] && existing+=("$f"); done

if [ ${#existing[@]} -gt 0 ] && grep -qsE '^[^#]*bookworm-backports' "${existing[@]}"; then
  echo "add-backports-source: bookworm-backports is already a source" >&2
  exit 0
fi

content=""
# deb822: the first enabled stanza of type deb whose Suites has "bookworm".
for f in "${sources[@]}"; do
  found=$(awk 'BEGIN { RS = ""; FS = "\n" }
    {
      uris = ""; suites = ""; types = ""; signed = ""; enabled = 1
      for (i = 1; i <= NF; i++) {
        line = $i
        if (line ~ /^[ \t]*#/) continue
        if (line ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", line); uris = line }
        else if (line ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", line); suites = " " line " " }
        else if (line ~ /^Types:/) { sub(/^Types:[ \t]*/, "", line); types = " " line " " }
        else if (line ~ /^Signed-By:/) { sub(/^Signed-By:[ \t]*/, "", line); signed = line }
        else if (line ~ /^Enabled:[ \t]*no/) enabled = 0
      }
      if (enabled && types ~ / deb / && suites ~ / bookworm / && uris != "") {
        split(uris, u, " ")
        print "Types: deb"; print "URIs: " u[1]; print "Suites: bookworm-backports"; print "Components: main"
        if (signed != "") print "Signed-By: " signed
        exit
      }
    }' "$f")
  if [ -n "$found" ]; then content="$found"; target="$etc/sources.list.d/bookworm-backports.sources"; break; fi
done

# One-line: "deb [options] URI bookworm components".
if [ -z "$content" ]; then
  for f in "${lists[@]}"; do
    [ -f "$f" ] || continue
    found=$(awk '$1 == "deb" {
        i = 2; opts = ""
        if ($2 ~ /^\[/) { while ($i !~ /\]$/) { opts = opts $i " "; i++ } opts = opts $i " "; i++ }
        if ($(i + 1) == "bookworm") { print "deb " opts $i " bookworm-backports main"; exit }
      }' "$f")
    if [ -n "$found" ]; then content="$found"; target="$etc/sources.list.d/bookworm-backports.list"; break; fi
  done
fi

if [ -z "$content" ]; then
  echo "add-backports-source: no bookworm source found in $etc to take the mirror from" >&2
  exit 1
fi

if $print_only; then
  echo "$content"
  exit 0
fi
echo "$content" > "$target"
echo "add-backports-source: wrote $target" >&2
