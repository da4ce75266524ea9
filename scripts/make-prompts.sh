#!/usr/bin/env bash
# Makes the product's own prompts (asterisk-config/prompts.tsv) as Asterisk reads them: WAV, 8 kHz, mono,
# 16-bit. Speech comes from espeak-ng, the hold music is a gentle tone pattern made with sox: nothing is
# downloaded. Needs: espeak-ng, sox (Debian packages of the same names).
#
#   scripts/make-prompts.sh [OUT_DIR]        (default: build/sounds)
#
# OUT_DIR then mirrors Asterisk's sounds directory (en/cti/hold-music.wav, zh/demo/welcome.wav,
# cs/zh/welcome.wav, ...): copy it over /var/lib/asterisk/sounds/ (asterisk-config/README.md, step 2).
set -euo pipefail
cd "$(dirname "$0")/.."
manifest=asterisk-config/prompts.tsv
out=${1:-build/sounds}

for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "make-prompts: $tool is not installed (apt-get install $tool)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Hold music: a slow, quiet arpeggio over two chords, faded in and out so the loop has no click.
hold_music() {
  local target=$1 i=0 notes=(261.63 329.63 392.00 523.25 392.00 329.63 220.00 261.63 329.63 440.00 329.63 261.63)
  for f in "${notes[@]}"; do
    sox -n -r 8000 -c 1 -b 16 "$work/note-$(printf %02d $i).wav" synth 0.7 sine "$f" fade q 0.08 0.7 0.35 vol 0.25
    i=$((i + 1))
  done
  sox "$work"/note-*.wav "$target" fade t 0.3 0 0.5
  rm -f "$work"/note-*.wav
}

made=0
while IFS=$'\t' read -r dir name voice text; do
  case "$dir" in ''|'#'*) continue ;; esac
  if [ -z "$name" ] || [ -z "$voice" ] || [ -z "$text" ]; then
    echo "make-prompts: $manifest: a line needs 4 tab-separated columns: '$dir $name'" >&2
    exit 2
  fi
  if [ "$dir" = "-" ]; then target="$out/$name.wav"; else target="$out/$dir/$name.wav"; fi
  mkdir -p "$(dirname "$target")"
  if [ "$voice" = "tone" ]; then
    hold_music "$target"
  else
    espeak-ng -v "$voice" -s 150 -w "$work/raw.wav" "$text"
    # Telephone quality, with a little silence before and after the words.
    sox "$work/raw.wav" -r 8000 -c 1 -b 16 "$target" gain -n -3 pad 0.2 0.3
  fi
  made=$((made + 1))
done < "$manifest"
echo "make-prompts: $made prompts in $out"
