{
  "targets": [
    {
      "target_name": "berth_native",
      "sources": ["native/berth_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      "target_name": "berth-shim",
      "type": "executable",
      "sources": ["native/berth-shim.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-static"]
    }
  ]
}
