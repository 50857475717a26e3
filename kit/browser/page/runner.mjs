// The in-page half of the kit's browser platforms: load an ONNX model with onnxruntime-web on one execution
// provider (wasm, webgpu, webnn), run it once per call and return the time measured here with performance.now().
// Python (kit/browser/page.py) drives this page over the DevTools protocol; nothing here decides what to measure.
// The onnxruntime-web bundle comes from the page's ?bundle= parameter (the wasm-only one for the wasm provider).
// Text generation runs through transformers.js (@huggingface/transformers, imported on first use): index.html's
// import map resolves its onnxruntime-web imports to this same bundle, so both drivers share one onnxruntime-web.
const bundle = new URLSearchParams(location.search).get('bundle') || 'ort.all.min.mjs';
const ort = await import(`/ort/${bundle}`);
// set before transformers.js is imported: it points an unset path at a CDN
ort.env.wasm.wasmPaths = '/ort/';

const state = { session: null, feeds: null, lastOutput: null, runs: 0, generator: null, generatorRuns: null };
let transformers = null;

const TYPED = {
  float32: (buf) => new Float32Array(buf),
  int64: (buf) => new BigInt64Array(buf),
  int32: (buf) => new Int32Array(buf),
  bool: (buf) => new Uint8Array(buf),
};

// Smallest non-zero step of performance.now() (5 us when cross-origin isolated in Chromium, 100 us otherwise).
function timerResolutionMs() {
  let best = Infinity;
  for (let i = 0; i < 50; i++) {
    const a = performance.now();
    let b = performance.now();
    while (b === a) b = performance.now();
    best = Math.min(best, b - a);
  }
  return best;
}

async function webgpuInfo() {
  if (!navigator.gpu) return { available: false, error: 'navigator.gpu is undefined (WebGPU disabled)' };
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return { available: false, error: 'navigator.gpu.requestAdapter() returned null' };
  const info = adapter.info || {};
  const fallback = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter);
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  return {
    available: true, vendor: info.vendor, architecture: info.architecture, device: info.device,
    description: info.description, isFallbackAdapter: fallback,
    emulated: fallback || text.includes('swiftshader') || text.includes('llvmpipe'),
    features: [...adapter.features].sort(),
  };
}

async function webnnInfo(deviceType) {
  if (!navigator.ml) return { available: false, error: 'navigator.ml is undefined (WebNN disabled in this build)' };
  try {
    await navigator.ml.createContext({ deviceType });
    return { available: true, deviceType };
  } catch (e) {
    return { available: false, error: `${e.name}: ${e.message}` };
  }
}

// Facts about this browser: isolation (threads), cores, timer resolution, WebGPU adapter, WebNN context.
async function probe(webnnDeviceType = 'cpu') {
  return {
    userAgent: navigator.userAgent, crossOriginIsolated: self.crossOriginIsolated,
    hardwareConcurrency: navigator.hardwareConcurrency, timerResolutionMs: timerResolutionMs(),
    ortVersions: ort.env.versions, webgpu: await webgpuInfo(), webnn: await webnnInfo(webnnDeviceType),
  };
}

function providerOption(config) {
  if (config.provider === 'webnn') return { name: 'webnn', deviceType: config.webnnDeviceType || 'cpu' };
  return config.provider;
}

async function loadFeeds(manifestUrl) {
  const manifest = await (await fetch(manifestUrl)).json();
  const data = await (await fetch(manifest.data)).arrayBuffer();
  const feeds = {};
  for (const t of manifest.tensors) {
    const buf = data.slice(t.offset, t.offset + t.nbytes);
    feeds[t.name] = new ort.Tensor(t.dtype, TYPED[t.dtype](buf), t.shape);
  }
  return feeds;
}

// Create the session on one execution provider and read the inputs; returns timings and what ORT reports.
async function load(config) {
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.numThreads = config.numThreads;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'warning';
  const t0 = performance.now();
  const options = {
    executionProviders: [providerOption(config)], graphOptimizationLevel: 'all',
    freeDimensionOverrides: config.freeDimensionOverrides || {}, logSeverityLevel: 2,
  };
  if (config.externalData) options.externalData = config.externalData;
  state.session = await ort.InferenceSession.create(config.model, options);
  const t1 = performance.now();
  state.feeds = await loadFeeds(config.inputs);
  state.lastOutput = null;
  state.runs = 0;
  document.getElementById('status').textContent = `loaded on ${config.provider}`;
  const wasm = performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.endsWith('.wasm'));
  return {
    sessionCreateMs: t1 - t0, inputNames: state.session.inputNames, outputNames: state.session.outputNames,
    numThreads: ort.env.wasm.numThreads, crossOriginIsolated: self.crossOriginIsolated, wasmFiles: wasm,
  };
}

// One inference; the time between the two performance.now() calls is what the kit records.
async function run() {
  const t0 = performance.now();
  const outputs = await state.session.run(state.feeds);
  const t1 = performance.now();
  state.lastOutput = outputs[state.session.outputNames[0]];
  state.runs += 1;
  return t1 - t0;
}

// Bytes of a run's KV cache outputs (present.*), from their shapes (WebGPU keeps them in GPU buffers).
function presentBytes(outputs) {
  let sum = 0;
  for (const [name, t] of Object.entries(outputs)) {
    if (name.startsWith('present')) sum += t.dims.reduce((a, b) => a * b, 1) * 4;  // f32 cache
  }
  return sum;
}

// Load the exported decoder with transformers.js from the page server only (config.modelRoot + config.modelId:
// config.json, generation_config.json, onnx/model.onnx) on the provider, and read the prompt. The session's run is
// wrapped to time the call's first run (the prefill) and to read the KV cache's size after the prompt and at the end.
async function loadGenerator(config) {
  ort.env.wasm.numThreads = config.numThreads;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'warning';
  transformers = await import('@huggingface/transformers');
  const { env, AutoModelForCausalLM } = transformers;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = config.modelRoot;
  env.useBrowserCache = false;
  env.useWasmCache = false;
  const t0 = performance.now();
  const model = await AutoModelForCausalLM.from_pretrained(config.modelId, {
    device: config.provider, dtype: 'fp32', session_options: { graphOptimizationLevel: 'all', logSeverityLevel: 2 },
  });
  const t1 = performance.now();
  const session = model.sessions.model;
  const run = session.run.bind(session);
  session.run = async (feeds, ...rest) => {
    const s0 = performance.now();
    const out = await run(feeds, ...rest);
    const runs = state.generatorRuns;
    if (runs !== null) {
      if (runs.count === 0) { runs.prefillMs = performance.now() - s0; runs.bytes[0] = presentBytes(out); }
      runs.count += 1;
      runs.bytes[1] = presentBytes(out);
    }
    return out;
  };
  state.generator = model;
  state.feeds = await loadFeeds(config.inputs);
  document.getElementById('status').textContent = `generator loaded on ${config.provider}`;
  return {
    sessionCreateMs: t1 - t0, inputNames: session.inputNames, outputNames: session.outputNames,
    numThreads: ort.env.wasm.numThreads, crossOriginIsolated: self.crossOriginIsolated, version: env.version,
    ortVersion: ort.env.versions.web,
  };
}

// Greedy generation of config.newTokens tokens by transformers.js's model.generate from the prompt's token ids (no
// tokenizer), end-of-sequence not a stop (eos_token_id null: pure argmax, as onnxruntime in Python). A streamer
// stamps each new token with performance.now() from the call's start as generate hands it over.
async function generateWithTransformers(config) {
  const { Tensor, BaseStreamer } = transformers;
  const ids = state.feeds.input_ids;
  const inputIds = new Tensor('int64', BigInt64Array.from(ids.data), ids.dims);
  const mask = new Tensor('int64', new BigInt64Array(ids.data.length).fill(1n), ids.dims);
  const stamps = [];
  const tokens = [];
  let t0 = 0;
  let prompt = true;
  class StampingStreamer extends BaseStreamer {
    put(value) {
      const now = performance.now();
      if (prompt) { prompt = false; return; }  // the first put is the prompt
      stamps.push(now - t0);
      tokens.push(Number(value[0][0]));
    }

    end() {}
  }
  const streamer = new StampingStreamer();
  state.generatorRuns = { count: 0, prefillMs: 0, bytes: [0, 0] };
  t0 = performance.now();
  await state.generator.generate({
    input_ids: inputIds, attention_mask: mask, max_new_tokens: config.newTokens, min_new_tokens: config.newTokens,
    do_sample: false, num_beams: 1, eos_token_id: null, streamer,
  });
  const totalMs = performance.now() - t0;
  const runs = state.generatorRuns;
  state.generatorRuns = null;
  return { prefillMs: runs.prefillMs, stampsMs: stamps, totalMs, bytes: runs.bytes, tokens, runs: runs.count };
}

// One greedy generation by the driver config.driver names: 'transformers.js' (loadGenerator) or 'loop' (load).
async function generate(config) {
  return config.driver === 'loop' ? generateWithLoop(config) : generateWithTransformers(config);
}

// Greedy generation of config.newTokens tokens by a token loop of its own around the session (load): the prompt
// with an empty past, then one token per run, each token's arrival stamped with performance.now() from the call's
// start. The presents' bytes after the prompt and after the run give the KV cache.
async function generateWithLoop(config) {
  const pastNames = state.session.inputNames.filter((n) => n.startsWith('past_'));
  const presentNames = state.session.outputNames.slice(1);
  const batch = state.feeds.input_ids.dims[0];
  let feeds = { ...state.feeds };
  for (const name of pastNames) {
    feeds[name] = new ort.Tensor('float32', new Float32Array(0), [batch, config.kvHeads, 0, config.headDim]);
  }
  const stamps = [];
  const bytes = [];
  const tokens = [];
  let prefillMs = 0;
  const t0 = performance.now();
  for (let step = 0; step < config.newTokens; step++) {
    const s0 = performance.now();
    const out = await state.session.run(feeds);
    if (step === 0) prefillMs = performance.now() - s0;
    const logits = out[state.session.outputNames[0]];
    const vocab = logits.dims[logits.dims.length - 1];
    const positions = logits.data.length / (batch * vocab);  // 1: the decoder returns the last position's logits
    const next = new BigInt64Array(batch);
    for (let b = 0; b < batch; b++) {
      const end = (b + 1) * positions * vocab;
      const row = logits.data.subarray(end - vocab, end);
      let best = 0;
      for (let v = 1; v < vocab; v++) if (row[v] > row[best]) best = v;
      next[b] = BigInt(best);
    }
    stamps.push(performance.now() - t0);
    tokens.push(Number(next[0]));
    const presents = presentNames.map((n) => out[n]);
    if (step === 0) bytes.push(presentBytes(out));
    const done = feeds.attention_mask.dims[1];
    feeds = {
      input_ids: new ort.Tensor('int64', next, [batch, 1]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(batch * (done + 1)).fill(1n), [batch, done + 1]),
      position_ids: new ort.Tensor('int64', new BigInt64Array(batch).fill(BigInt(done)), [batch, 1]),
    };
    pastNames.forEach((name, i) => { feeds[name] = presents[i]; });
    if (step === config.newTokens - 1) bytes.push(presentBytes(out));
  }
  return { prefillMs, stampsMs: stamps, totalMs: performance.now() - t0, bytes, tokens, runs: config.newTokens };
}

function toBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// The last run's output, as base64 of its bytes, for the deviation checks in Python (read only after timing).
async function lastOutput() {
  const t = state.lastOutput;
  if (t === null) throw new Error('no run yet');
  const data = t.location === 'cpu' ? t.data : await t.getData();
  return { dtype: t.type, shape: t.dims, b64: toBase64(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) };
}

window.bench = { probe, load, run, lastOutput, loadGenerator, generate };
document.getElementById('status').textContent = 'ready';
