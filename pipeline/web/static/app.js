// 质检工作台, every page: the JSON API with the CSRF header, flash messages that survive a reload,
// sign-in and sign-out, and "take next". Plain JS, no build step.
"use strict";

const Zj = (() => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  // One call to the API. Resolves to {status, data}; never throws on an HTTP error status, so each caller
  // says what a 409 or a 422 means on its page.
  async function api(method, url, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    const res = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    const text = await res.text();
    if (text) { try { data = JSON.parse(text); } catch (_) { data = { detail: text }; } }
    if (res.status === 401 && !url.endsWith("/api/login")) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    }
    return { status: res.status, data };
  }

  // The API's error text: FastAPI's {"detail": "..."} or a validation list, or whatever came back.
  function detail(data) {
    if (!data) return "";
    const d = data.detail !== undefined ? data.detail : data;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((e) => (e && e.msg) ? e.msg : JSON.stringify(e)).join("；");
    if (d && d.message) return d.message;
    return JSON.stringify(d);
  }

  function show(text, kind) {
    const el = document.getElementById("flash");
    if (!el) { alert(text); return; }
    el.textContent = text;
    el.className = "flash " + (kind || "info");
    el.scrollIntoView({ block: "nearest" });
  }

  // A message to show after the reload that follows a change.
  function flashNext(text, kind) {
    sessionStorage.setItem("zj-flash", JSON.stringify({ text, kind }));
  }

  function showPending() {
    const raw = sessionStorage.getItem("zj-flash");
    if (!raw) return;
    sessionStorage.removeItem("zj-flash");
    try { const f = JSON.parse(raw); show(f.text, f.kind); } catch (_) { /* ignore a bad entry */ }
  }

  async function takeNext() {
    const r = await api("POST", "/api/queue/next");
    if (r.status === 200 && r.data && r.data.id) {
      location.href = "/conversations/" + encodeURIComponent(r.data.id);
      return true;
    }
    if (r.status === 204) { show("队列中已没有待领取的会话", "info"); return false; }
    show("领取失败：" + (detail(r.data) || r.status), "error");
    return false;
  }

  return { api, detail, show, flashNext, showPending, takeNext };
})();

document.addEventListener("DOMContentLoaded", () => {
  Zj.showPending();

  const logout = document.getElementById("logout");
  if (logout) logout.addEventListener("click", async () => {
    await Zj.api("POST", "/api/logout");
    location.href = "/login";
  });

  const next = document.getElementById("take-next");
  if (next) next.addEventListener("click", async () => {
    next.disabled = true;
    try { await Zj.takeNext(); } finally { next.disabled = false; }
  });

  const form = document.getElementById("login-form");
  if (form) form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = document.getElementById("login-error");
    const button = document.getElementById("login-submit");
    button.disabled = true;
    const r = await Zj.api("POST", "/api/login", {
      login: form.elements.login.value.trim(), password: form.elements.password.value,
    });
    button.disabled = false;
    if (r.status === 200) {
      const to = form.dataset.next || "";
      // only a path on this site: never an open redirect
      location.href = to.startsWith("/") && !to.startsWith("//") && !to.startsWith("/\\") ? to : "/";
      return;
    }
    err.textContent = r.status === 429 ? "登录失败次数过多，请 15 分钟后再试"
      : r.status === 401 ? "账号或密码错误" : "登录失败：" + (Zj.detail(r.data) || r.status);
    err.classList.remove("hidden");
    form.elements.password.select();
  });
});
