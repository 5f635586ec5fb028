// Rich outputs through the official SDK (@e2b/code-interpreter from npm,
// unmodified): Result.chart, .data, .json and .png as an AI data analyst's
// application reads them. The chart cells are the reference's own SDK tests
// (js/tests/charts/*.test.ts in e2b-dev/code-interpreter) with the values
// they expect. Run through run.sh (E2B_DEBUG=true, daemon on :49999).

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'

import { Sandbox, removeContext } from './sdk.mjs'

const T = { timeout: 60_000 }

let sbx
let ctx

before(async () => {
  assert.equal(process.env.E2B_DEBUG, 'true', 'run through tests/sdk/run.sh')
  sbx = await Sandbox.create()
  // A context of our own: the default one belongs to sdk.test.mjs.
  ctx = await sbx.createCodeContext({ cwd: process.env.E2BCI_SDK_TMP })
  const setup = await sbx.runCode(
    'import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt',
    { context: ctx }
  )
  assert.equal(setup.error, undefined)
})

after(async () => {
  if (ctx) await removeContext(sbx, ctx)
})

// The one result of a cell that shows one figure: PNG, text and chart.
async function chartOf(code) {
  const execution = await sbx.runCode(code, { context: ctx })
  assert.equal(execution.error, undefined, execution.error?.traceback)
  assert.equal(execution.results.length, 1)
  const result = execution.results[0]
  assert.ok(result.png && Buffer.from(result.png, 'base64').subarray(1, 4).toString() === 'PNG')
  assert.ok(result.formats().includes('png'))
  assert.match(result.text, /^<Figure size/)
  assert.ok(result.chart, 'chart expected')
  // Chart data is plain JSON the application can keep or forward.
  assert.deepEqual(JSON.parse(JSON.stringify(result.chart)), result.chart)
  return result.chart
}

const isNumber = (v) => typeof v === 'number'
const isString = (v) => typeof v === 'string'

test('line chart', T, async () => {
  const chart = await chartOf(`
import datetime
dates = [datetime.date(2023, 9, 1) + datetime.timedelta(seconds=i) for i in range(100)]
x = np.linspace(0, 2*np.pi, 100)
plt.figure(figsize=(10, 6))
plt.plot(dates, np.sin(x), label='sin(x)')
plt.plot(dates, np.cos(x), label='cos(x)')
plt.xlabel("Time (s)")
plt.ylabel("Amplitude (Hz)")
plt.title('Plot of sin(x) and cos(x)')
plt.show()
`)
  assert.equal(chart.type, 'line')
  assert.equal(chart.title, 'Plot of sin(x) and cos(x)')
  assert.equal(chart.x_label, 'Time (s)')
  assert.equal(chart.y_label, 'Amplitude (Hz)')
  assert.equal(chart.x_unit, 's')
  assert.equal(chart.y_unit, 'Hz')
  assert.equal(chart.x_scale, 'datetime')
  assert.equal(chart.y_scale, 'linear')
  assert.ok(chart.x_ticks.length > 0 && chart.x_ticks.every(isString))
  assert.ok(!Number.isNaN(new Date(chart.x_ticks[0]).getTime()))
  assert.ok(chart.y_ticks.every(isNumber))
  assert.ok(chart.x_tick_labels.every(isString) && chart.y_tick_labels.every(isString))
  const [sin, cos] = chart.elements
  assert.equal(chart.elements.length, 2)
  assert.equal(sin.label, 'sin(x)')
  assert.equal(cos.label, 'cos(x)')
  for (const line of chart.elements) {
    assert.equal(line.points.length, 100)
    assert.ok(line.points.every(([x, y]) => isString(x) && isNumber(y)))
  }
  assert.deepEqual(new Date(sin.points[0][0]), new Date('2023-09-01T00:00:00.000Z'))
})

test('log scale and categorical scale', T, async () => {
  let chart = await chartOf(`
x = np.linspace(0, 100, 100)
plt.figure(figsize=(10, 6))
plt.plot(x, np.exp(x), label='y = e^x')
plt.yscale('log')
plt.xlabel('X-axis')
plt.ylabel('Y-axis (log scale)')
plt.title('Chart with Log Scale on Y-axis')
plt.legend()
plt.grid(True)
plt.show()
`)
  assert.equal(chart.type, 'line')
  assert.equal(chart.x_unit, null)
  assert.equal(chart.y_unit, 'log scale')
  assert.equal(chart.x_scale, 'linear')
  assert.equal(chart.y_scale, 'log')
  assert.equal(chart.elements.length, 1)
  assert.equal(chart.elements[0].label, 'y = e^x')
  assert.ok(chart.elements[0].points.every(([x, y]) => isNumber(x) && isNumber(y)))

  chart = await chartOf(`
plt.figure(figsize=(10, 6))
plt.plot([1, 2, 3, 4, 5], ['A', 'B', 'C', 'D', 'E'])
plt.show()
`)
  assert.equal(chart.x_scale, 'linear')
  assert.equal(chart.y_scale, 'categorical')
})

test('scatter chart', T, async () => {
  const chart = await chartOf(`
plt.xlabel("A")
plt.ylabel("B")
plt.scatter(np.random.rand(5), np.random.rand(5), c='blue', label='Dataset 1')
plt.scatter(np.random.rand(10), np.random.rand(10), c='red', label='Dataset 2')
plt.show()
`)
  assert.equal(chart.type, 'scatter')
  assert.equal(chart.title, null)
  assert.equal(chart.x_label, 'A')
  assert.equal(chart.y_label, 'B')
  assert.ok(chart.x_ticks.every(isNumber) && chart.y_ticks.every(isNumber))
  assert.deepEqual(
    chart.elements.map((e) => [e.label, e.points.length]),
    [['Dataset 1', 5], ['Dataset 2', 10]]
  )
  assert.ok(chart.elements[1].points.every(([x, y]) => isNumber(x) && isNumber(y)))
})

test('bar chart', T, async () => {
  const chart = await chartOf(`
authors = ['Author A', 'Author B', 'Author C', 'Author D']
sales = [100, 200, 300, 400]
plt.figure(figsize=(10, 6))
plt.bar(authors, sales, label='Books Sold', color='blue')
plt.xlabel('Authors')
plt.ylabel('Number of Books Sold')
plt.title('Book Sales by Authors')
plt.tight_layout()
plt.show()
`)
  assert.equal(chart.type, 'bar')
  assert.equal(chart.title, 'Book Sales by Authors')
  assert.equal(chart.x_label, 'Authors')
  assert.equal(chart.y_label, 'Number of Books Sold')
  assert.equal(chart.x_unit, null)
  assert.equal(chart.y_unit, null)
  assert.deepEqual(chart.elements.map((b) => b.value), [100, 200, 300, 400])
  assert.deepEqual(chart.elements.map((b) => b.group), Array(4).fill('Books Sold'))
  assert.deepEqual(chart.elements.map((b) => b.label), ['Author A', 'Author B', 'Author C', 'Author D'])
})

test('pie chart', T, async () => {
  const chart = await chartOf(`
categories = ["No", "No, in blue"]
sizes = [90, 10]
fig, ax = plt.subplots(figsize=(8, 8))
plt.xlabel("x")
plt.ylabel("y")
ax.pie(sizes, labels=categories, autopct='%1.1f%%', startangle=90, colors=plt.cm.Pastel1.colors[:len(categories)])
ax.axis('equal')
plt.title('Will I wake up early tomorrow?')
plt.show()
`)
  assert.equal(chart.type, 'pie')
  assert.equal(chart.title, 'Will I wake up early tomorrow?')
  assert.deepEqual(chart.elements, [
    { label: 'No', angle: 324, radius: 1 },
    { label: 'No, in blue', angle: 36, radius: 1 },
  ])
})

test('box and whisker chart', T, async () => {
  const chart = await chartOf(`
data = {
    'Class A': [85, 90, 78, 92, 88],
    'Class B': [95, 89, 76, 91, 84, 87],
    'Class C': [75, 82, 88, 79, 86]
}
fig, ax = plt.subplots(figsize=(10, 6))
ax.set_title('Exam Scores Distribution')
ax.set_xlabel('Class')
ax.set_ylabel('Score')
ax.boxplot(data.values(), labels=data.keys(), patch_artist=True)
plt.tight_layout()
plt.show()
`)
  assert.equal(chart.type, 'box_and_whisker')
  assert.equal(chart.title, 'Exam Scores Distribution')
  assert.equal(chart.x_label, 'Class')
  assert.equal(chart.y_label, 'Score')
  assert.equal(chart.x_unit, null)
  assert.equal(chart.y_unit, null)
  const boxes = chart.elements
  assert.deepEqual(boxes.map((b) => b.label), ['Class A', 'Class B', 'Class C'])
  assert.deepEqual(boxes.map((b) => b.outliers), [[], [76], []])
  assert.deepEqual(boxes.map((b) => b.min), [78, 84, 75])
  assert.deepEqual(boxes.map((b) => b.first_quartile), [85, 84.75, 79])
  assert.deepEqual(boxes.map((b) => b.median), [88, 88, 82])
  assert.deepEqual(boxes.map((b) => b.third_quartile), [90, 90.5, 86])
  assert.deepEqual(boxes.map((b) => b.max), [92, 95, 88])
})

test('superchart and unknown chart', T, async () => {
  let chart = await chartOf(`
x1 = np.linspace(0, 10, 100)
fig, axs = plt.subplots(1, 2, figsize=(10, 8))
fig.suptitle('Multiple Charts Example', fontsize=16)
axs[0].plot(x1, np.sin(x1), 'r')
axs[0].set_title('Sine Wave')
axs[0].grid(True)
axs[1].scatter(np.random.rand(5), np.random.rand(5), c='blue', label='Dataset 1')
axs[1].set_xlabel('X')
axs[1].set_ylabel('Y')
axs[1].set_title('Scatter Plot')
axs[1].grid(True)
plt.show()
`)
  assert.equal(chart.type, 'superchart')
  assert.equal(chart.title, 'Multiple Charts Example')
  const [first, second] = chart.elements
  assert.equal(chart.elements.length, 2)
  assert.equal(first.type, 'line')
  assert.equal(first.title, 'Sine Wave')
  assert.equal(first.x_label, null)
  assert.equal(first.y_label, null)
  assert.equal(first.elements.length, 1)
  assert.equal(first.elements[0].points.length, 100)
  assert.equal(second.type, 'scatter')
  assert.equal(second.title, 'Scatter Plot')
  assert.equal(second.x_label, 'X')
  assert.equal(second.y_label, 'Y')
  assert.equal(second.elements[0].points.length, 5)

  chart = await chartOf(`
fig, ax = plt.subplots()
ax.add_artist(plt.Circle((0, 0), 1, color='blue', fill=False, linewidth=2))
ax.add_artist(plt.Circle((0, 0), 2, color='red', fill=False, linewidth=2))
ax.grid(True)
plt.title('Two Concentric Circles')
plt.show()
`)
  assert.deepEqual(chart, { type: 'unknown', title: 'Two Concentric Circles', elements: [] })
})

// A cut is never silent: the marker arrives in the result line's `extra`
// (the JS SDK keeps that object in result.raw.extra; the Python SDK in
// result.extra), with one line on stderr; the limits are options.
test('cut DataFrame data and thinned charts are marked', T, async () => {
  const MARK = 'e2b-ci/truncated'
  const frame = await sbx.runCode("pd.DataFrame({'a': range(50_000)})", { context: ctx })
  assert.equal(frame.error, undefined)
  const r = frame.results[0]
  assert.equal(r.data.a.length, 10_000)
  assert.deepEqual(r.raw.extra[MARK], {
    data: { rows: 10_000, total_rows: 50_000, columns: 1, total_columns: 1,
      limits: ['E2B_CI_DATA_MAX_ROWS=10000'] },
  })
  assert.equal(frame.logs.stderr.length, 1)
  assert.match(frame.logs.stderr[0], /10,000 of 50,000 rows/)

  const whole = await sbx.runCode("pd.DataFrame({'a': range(50_000)})",
    { context: ctx, envs: { E2B_CI_DATA_MAX_ROWS: '0' } })
  assert.equal(whole.results[0].data.a.length, 50_000)
  assert.deepEqual(whole.results[0].raw.extra, {})
  assert.deepEqual(whole.logs.stderr, [])

  const line = await sbx.runCode('plt.plot(range(30_000))\nplt.show()', { context: ctx })
  assert.equal(line.error, undefined)
  const mark = line.results[0].raw.extra[MARK].chart
  assert.equal(mark.total_points, 30_000)
  assert.equal(mark.points, line.results[0].chart.elements[0].points.length)
  assert.ok(mark.points < 30_000)
  assert.match(line.logs.stderr.join(''), /of their 30,000 points/)
})

test('DataFrame data, dict json, PIL png', T, async () => {
  const frame = await sbx.runCode(
    "pd.DataFrame({'city': ['Oslo', 'Lima'], 'temp': [4.5, np.nan],"
      + " 'day': pd.to_datetime(['2024-03-01', '2024-03-02'])})",
    { context: ctx }
  )
  const r = frame.results[0]
  assert.ok(r.isMainResult)
  assert.match(r.html, /<table/)
  assert.ok(r.formats().includes('data'))
  assert.deepEqual(r.data, {
    city: ['Oslo', 'Lima'],
    temp: [4.5, null],
    day: ['2024-03-01T00:00:00', '2024-03-02T00:00:00'],
  })

  const dict = await sbx.runCode("{'n': np.int64(7), 'xs': np.arange(3) / 2}", { context: ctx })
  assert.deepEqual(dict.results[0].json, { n: 7, xs: [0, 0.5, 1] })
  assert.equal(dict.text, "{'n': 7, 'xs': array([0. , 0.5, 1. ])}")

  const images = await sbx.runCode(
    "from PIL import Image\nimg = Image.new('RGB', (4, 3), 'blue')\nimg.show()\nimg.save('blue.png')\nimg",
    { context: ctx }
  )
  assert.equal(images.error, undefined)
  assert.equal(images.results.length, 3)
  for (const result of images.results) {
    const png = Buffer.from(result.png, 'base64')
    assert.equal(png.subarray(1, 4).toString(), 'PNG')
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [4, 3])
  }
  assert.deepEqual(images.results.map((x) => x.isMainResult), [false, false, true])
})
