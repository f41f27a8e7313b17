// Loads the wasm module; its start function mounts the app and removes #boot.
import init from '/pkg/icehouse_frontend.js?v=@VERSION@';

init({ module_or_path: '/pkg/icehouse_frontend_bg.wasm?v=@VERSION@' }).catch((err) => {
  const boot = document.getElementById('boot');
  if (boot) {
    boot.textContent = 'Icehouse could not start in this browser: ' + err;
    boot.className = 'form-error';
  }
});
