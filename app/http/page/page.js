// The page at /: photos in, the network's answer, the 28x28 it saw and its evidence out.
// Plain script, no framework and no CDN: it runs offline under the page's Content-Security-Policy
// (scripts and styles from this origin only; photos shown as blob: URLs, the 28x28 as data:).
"use strict";

const KEY = "fashion-resnet-api-key"; // sessionStorage: this tab only, gone when it closes
const AT_ONCE = 4; // photos sent together; the rest wait their turn
const waitingForKey = [];
let running = 0;
const queue = [];

const $ = (selector, root = document) => root.querySelector(selector);
const percent = (p) => `${(100 * p).toFixed(1)} %`;

function setStatus(text) {
  $("#status").textContent = text;
}

function addPhotos(files) {
  const images = [...files];
  if (!images.length) return;
  setStatus(`${images.length} photo(s) sent for classification.`);
  for (const file of images) {
    const card = $("#card").content.firstElementChild.cloneNode(true);
    $(".name", card).textContent = file.name || "pasted image";
    const photo = $(".photo", card);
    photo.alt = `Your photo ${file.name || ""}`.trim();
    photo.addEventListener("error", () => { photo.hidden = true; }, { once: true });
    photo.src = URL.createObjectURL(file);
    $(".answer", card).textContent = "Classifying…";
    $("#results").prepend(card);
    queue.push([file, card]);
  }
  pump();
}

function pump() {
  while (running < AT_ONCE && queue.length) {
    const [file, card] = queue.shift();
    running += 1;
    classify(file, card).finally(() => { running -= 1; pump(); });
  }
}

async function classify(file, card) {
  const body = new FormData();
  body.append("image", file, file.name || "pasted.png");
  const headers = {};
  const key = sessionStorage.getItem(KEY);
  if (key) headers["X-API-Key"] = key;
  const explain = $("#explain").checked;
  const started = performance.now();
  let response;
  let answer;
  try {
    const model = $("#model-pick").hidden ? "" : `&model=${encodeURIComponent($("#model").value)}`;
    const url = `/predict?top_k=5&explain=${explain}${model}`;
    response = await fetch(url, { method: "POST", body, headers });
    answer = await response.json().catch(() => ({ detail: `the service answered ${response.status}` }));
  } catch (error) {
    showError(card, `The service could not be reached (${error.message}).`);
    return;
  }
  if (response.status === 401) {
    sessionStorage.removeItem(KEY);
    waitingForKey.push([file, card]);
    askForKey(answer.detail);
    return;
  }
  if (!response.ok) {
    showError(card, `${answer.detail || "The request failed."} (HTTP ${response.status})`);
    return;
  }
  render(card, answer, performance.now() - started);
}

function showError(card, message) {
  $(".answer", card).textContent = "No answer";
  const error = $(".error", card);
  error.textContent = message;
  error.hidden = false;
  setStatus(message);
}

function askForKey(detail) {
  const form = $("#key-form");
  form.hidden = false;
  setStatus(`An API key is needed: ${detail || "enter it above"}.`);
  $("#key").focus();
}

function render(card, answer, roundTripMs) {
  const answerLine = $(".answer", card);
  answerLine.textContent = "";
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = answer.label;
  const confidence = document.createElement("span");
  confidence.className = "confidence";
  confidence.textContent = ` ${percent(answer.confidence)}`;
  answerLine.append(label, confidence);
  $(".flag", card).hidden = !answer.none_of_the_classes;

  const bars = $(".bars", card);
  for (const score of answer.top_k) {
    const row = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = score.label;
    const track = document.createElement("div");
    track.className = "track";
    track.setAttribute("role", "meter");
    track.setAttribute("aria-label", score.label);
    track.setAttribute("aria-valuemin", "0");
    track.setAttribute("aria-valuemax", "1");
    track.setAttribute("aria-valuenow", String(score.probability));
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.dataset.probability = String(score.probability);
    fill.style.width = `${100 * score.probability}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.textContent = percent(score.probability);
    row.append(name, track, value);
    bars.append(row);
  }

  const t = answer.timing_ms;
  $(".timing", card).textContent =
    `Server ${t.total.toFixed(1)} ms (decode ${t.decode.toFixed(1)}, preprocess ` +
    `${t.preprocess.toFixed(1)}, queue ${t.queue.toFixed(1)}, network ${t.inference.toFixed(1)}); ` +
    `round trip ${roundTripMs.toFixed(0)} ms; ${answer.device}; ` +
    `model ${answer.model.name} version ${answer.model.version}.`;

  const seen = $(".seen", card);
  seen.setAttribute("aria-label", `The 28 by 28 image the network saw, answered ${answer.label}`);
  if (answer.network_input) {
    const image = new Image();
    image.onload = () => seen.getContext("2d").drawImage(image, 0, 0);
    image.src = `data:image/png;base64,${answer.network_input}`;
  }
  if (answer.saliency) {
    drawSaliency($(".seen-overlay", card), answer.saliency);
    const overlay = $(".photo-overlay", card);
    drawSaliency(overlay, answer.saliency);
    const [left, top, right, bottom] = answer.network_input_box;
    Object.assign(overlay.style, {
      left: `${100 * left}%`, top: `${100 * top}%`,
      width: `${100 * (right - left)}%`, height: `${100 * (bottom - top)}%`,
    });
  } else {
    card.classList.add("hide-overlay");
  }
  setStatus(`${answer.label} (${percent(answer.confidence)}) for ${$(".name", card).textContent}.`);
}

function drawSaliency(canvas, saliency) {
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(28, 28);
  saliency.flat().forEach((s, i) => {
    pixels.data.set([255, 128, 0, Math.round(255 * s)], 4 * i);
  });
  context.putImageData(pixels, 0, 0);
}

// With more than one model ready, a picker: the answer comes from the model chosen there.
async function offerModels() {
  const headers = {};
  const key = sessionStorage.getItem(KEY);
  if (key) headers["X-API-Key"] = key;
  let listing;
  try {
    const response = await fetch("/models", { headers });
    if (!response.ok) return; // a key is needed first: asked again once it is given
    listing = await response.json();
  } catch (error) {
    return;
  }
  const names = [...new Set(listing.models.filter((m) => m.state === "READY").map((m) => m.name))];
  const select = $("#model");
  select.replaceChildren(...names.map((name) => new Option(name, name, false, name === listing.default)));
  $("#model-pick").hidden = names.length < 2;
}

function setUp() {
  for (const id of ["files", "camera"]) {
    const input = $(`#${id}`);
    input.addEventListener("change", () => { addPhotos(input.files); input.value = ""; });
  }
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addPhotos(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => addPhotos(event.clipboardData.files));
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("#key").value);
    $("#key").value = "";
    $("#key-form").hidden = true;
    queue.push(...waitingForKey.splice(0));
    pump();
    offerModels();
  });
  offerModels();
}

setUp();
