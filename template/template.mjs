// template.mjs: the E2B custom template that runs e2b-ci, written with E2B's
// own Template SDK (npm `e2b`).
//
// The image: Debian 12, the project's sources in /usr/src/e2b-ci, the
// packages to run and build it from template/install-deps.sh (not the test
// toolchain), `make install` into /usr, the build packages removed again,
// e2b-ci.service enabled. E2B boots it (systemd is PID 1 in a sandbox),
// runs the start command and snapshots the VM once the ready command sees
// GET :49999/health answer 200, i.e. once the default contexts answer.
// `make vm-test` builds this very image from these steps and boots it.
//
//   node template.mjs dockerfile   the template as a Dockerfile (offline)
//   node template.mjs json         the build request E2B would get (offline)
//   node template.mjs build        build it on E2B (needs E2B_API_KEY; use
//                                  ./build.sh, which checks for it)
//
// Build settings come from the environment: E2B_TEMPLATE_NAME (default
// e2b-ci), E2B_TEMPLATE_CPUS (2), E2B_TEMPLATE_MEMORY_MB (2048).
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { Template, defaultBuildLogger, waitForURL } from 'e2b'

const here = path.dirname(fileURLToPath(import.meta.url))

/** The repository: what `copy` steps are relative to. */
export const ROOT = path.resolve(here, '..')
/** Where the sources live in the image. */
export const SRC = '/usr/src/e2b-ci'
/** Where `make install` puts e2b-ci: not /usr/local, which E2B makes
 * world-writable (`chmod -R 777 /usr/local`) after a template's steps; the
 * unit file would draw systemd's "world-writable" warning and `user` could
 * replace the binary the unit runs as root, and the kernels. */
export const PREFIX = '/usr'
export const PORT = 49999
export const HEALTH_URL = `http://localhost:${PORT}/health`

/** Left out of the upload: build trees, dependencies a step reinstalls
 * (install-deps.sh runs every kernels/NAME/install.sh), caches, git. */
export const IGNORE = [
  '.git', '.git/**',
  'build', 'build/**',
  'build-asan', 'build-asan/**',
  '**/node_modules', '**/node_modules/**',
  '**/__pycache__', '**/__pycache__/**',
  '.pytest_cache', '.pytest_cache/**',
]

export function makeTemplate () {
  return Template({ fileContextPath: ROOT, fileIgnorePatterns: IGNORE })
    .fromDebianImage('bookworm')
    .setUser('root')
    .setWorkdir('/')
    // Packages first, from what they depend on only, so that a change in
    // server/ does not redo the apt and npm installs.
    .copy('template/install-deps.sh', `${SRC}/template/install-deps.sh`, { mode: 0o755 })
    .copy('kernels', `${SRC}/kernels`)
    .runCmd(`${SRC}/template/install-deps.sh --no-tests`)
    .copy('.', `${SRC}/`)
    .runCmd(`make -C ${SRC} -j"$(nproc)" install PREFIX=${PREFIX} && make -C ${SRC} clean`)
    // The image holds what runs: the compilers, -dev packages and npm that
    // --no-tests installed go again (install-deps.sh remembers which).
    .runCmd(`${SRC}/template/install-deps.sh --remove-build-deps`)
    .runCmd('systemctl enable e2b-ci.service')
    // Sandboxes run as E2B's default user; the unit runs as root.
    .setUser('user')
    .setWorkdir('/home/user')
    // With Type=notify, `systemctl start` returns once READY=1 is sent
    // (or at once when boot already started the enabled unit).
    .setStartCmd('sudo systemctl start e2b-ci.service', waitForURL(HEALTH_URL, 200))
}

async function main (mode) {
  const template = makeTemplate()
  if (mode === 'dockerfile') {
    process.stdout.write(Template.toDockerfile(template))
    return
  }
  if (mode === 'json') {
    process.stdout.write(await Template.toJSON(template, false) + '\n')
    return
  }
  if (mode === 'build') {
    if (!process.env.E2B_API_KEY) {
      throw new Error('E2B_API_KEY is not set: get a key at https://e2b.dev/dashboard')
    }
    const name = process.env.E2B_TEMPLATE_NAME || 'e2b-ci'
    const info = await Template.build(template, name, {
      cpuCount: Number(process.env.E2B_TEMPLATE_CPUS || 2),
      memoryMB: Number(process.env.E2B_TEMPLATE_MEMORY_MB || 2048),
      onBuildLogs: defaultBuildLogger(),
    })
    console.log(`built template ${info.name} (id ${info.templateId}, build ${info.buildId})`)
    return
  }
  console.error('usage: node template.mjs dockerfile|json|build')
  process.exitCode = 2
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv[2]).catch((err) => {
    console.error(`template: ${err.message || err}`)
    process.exitCode = 1
  })
}
