#!/usr/bin/env bash
# Regenerates Sources/WhittleIO/ONNX/Generated/onnx-subset.pb.swift from
# Proto/onnx-subset.proto.
#
# Needs: protoc (3.x or newer) on PATH, a Swift toolchain, git.
#
# The protoc-gen-swift plugin is built once from swift-protobuf (the same version the
# package depends on) into .cache/protoc-gen-swift/ (git-ignored) and reused afterwards.
# The swift-protobuf sources come from, in order of preference:
#   $SWIFT_PROTOBUF_SOURCE (a local checkout or git URL),
#   .build/checkouts/swift-protobuf (left there by `swift build`),
#   https://github.com/apple/swift-protobuf.git
#
# Usage: Scripts/generate-onnx-proto.sh [--rebuild-plugin]
set -euo pipefail

SWIFT_PROTOBUF_VERSION="1.39.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/protoc-gen-swift"
PLUGIN="$CACHE/bin/protoc-gen-swift"
PROTO_DIR="$ROOT/Proto"
OUT_DIR="$ROOT/Sources/WhittleIO/ONNX/Generated"

command -v protoc >/dev/null || { echo "error: protoc not found (install protobuf-compiler)" >&2; exit 1; }

if [[ "${1:-}" == "--rebuild-plugin" ]]; then
  rm -rf "$CACHE"
fi

if [[ ! -x "$PLUGIN" ]]; then
  source="${SWIFT_PROTOBUF_SOURCE:-}"
  if [[ -z "$source" && -d "$ROOT/.build/checkouts/swift-protobuf" ]]; then
    source="$ROOT/.build/checkouts/swift-protobuf"
  fi
  source="${source:-https://github.com/apple/swift-protobuf.git}"

  echo "building protoc-gen-swift $SWIFT_PROTOBUF_VERSION from $source (takes a few minutes)"
  rm -rf "$CACHE/src"
  mkdir -p "$CACHE/bin"
  git clone --quiet "$source" "$CACHE/src"
  git -C "$CACHE/src" -c advice.detachedHead=false checkout --quiet "$SWIFT_PROTOBUF_VERSION"
  (cd "$CACHE/src" && swift build -c release --product protoc-gen-swift)
  cp "$(cd "$CACHE/src" && swift build -c release --show-bin-path)/protoc-gen-swift" "$PLUGIN"
fi

mkdir -p "$OUT_DIR"
protoc \
  --plugin=protoc-gen-swift="$PLUGIN" \
  --proto_path="$PROTO_DIR" \
  --swift_opt=Visibility=Internal \
  --swift_opt=FileNaming=FullPath \
  --swift_out="$OUT_DIR" \
  onnx-subset.proto

echo "wrote $OUT_DIR/onnx-subset.pb.swift"
