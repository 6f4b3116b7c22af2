package main

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func csvPath(dir string) string { return filepath.Join(dir, "soak.csv") }
func pngPath(dir string) string { return filepath.Join(dir, "soak.png") }

func num(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

func count(n int) string {
	if n < 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// writeCSV writes one row per sample; a value /status or /api/v1/queue did
// not answer is left empty.
func writeCSV(dir string, ss []sample) error {
	f, err := os.Create(csvPath(dir))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"time_s", "phase", "rss_mb", "heap_mb", "sys_mb", "goroutines", "sent", "accepted", "pending"})
	for _, s := range ss {
		w.Write([]string{strconv.FormatFloat(s.T, 'f', 1, 64), s.Phase, num(s.RSSMB), num(s.HeapMB), num(s.SysMB),
			count(s.Goroutines), count(s.Sent), count(s.Accepted), count(s.Pending)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func series(ss []sample, y func(sample) float64) plotter.XYs {
	var xys plotter.XYs
	for _, s := range ss {
		if v := y(s); !math.IsNaN(v) {
			xys = append(xys, plotter.XY{X: s.T, Y: v})
		}
	}
	return xys
}

// vline is a vertical line across a plot's whole height.
type vline struct {
	x     float64
	style draw.LineStyle
}

func (l vline) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	x := trX(l.x)
	c.StrokeLine2(l.style, x, c.Min.Y, x, c.Max.Y)
}

func markPhases(p *plot.Plot, res result) {
	boundary := draw.LineStyle{Color: color.Gray{Y: 90}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}
	for _, x := range []float64{res.idle.Seconds(), (res.idle + res.load).Seconds()} {
		p.Add(vline{x: x, style: boundary})
	}
	colors := map[string]color.Color{
		"drop":       color.RGBA{R: 230, G: 160, B: 160, A: 255},
		"restart":    color.RGBA{R: 160, G: 160, B: 230, A: 255},
		"stream_503": color.RGBA{R: 160, G: 210, B: 160, A: 255},
	}
	for _, f := range res.faults {
		p.Add(vline{x: f.T, style: draw.LineStyle{Color: colors[f.Kind], Width: vg.Points(0.6)}})
	}
}

func addLine(p *plot.Plot, name string, xys plotter.XYs, c color.Color) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color, l.Width = c, vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// writePlot draws memory (RSS, heap, sys) above goroutines, with the
// phases (dashed) and the injected faults (thin: red drop, blue restart,
// green stream_503) marked.
func writePlot(dir string, res result, v verdict, idleTargetMB float64) error {
	mem := plot.New()
	outcome := "PASS"
	if !v.ok() {
		outcome = "FAIL"
	}
	mem.Title.Text = fmt.Sprintf("blacksky soak: idle | load (faults marked) | cool-down - %s; idle RSS %.1f MB, load median %.1f / max %.1f MB",
		outcome, v.IdleRSS, v.LoadRSSMedian, v.LoadRSSMax)
	mem.Y.Label.Text = "MB"
	mem.Y.Min = 0
	mem.Legend.Top, mem.Legend.Left = true, false
	markPhases(mem, res)
	for _, l := range []struct {
		name string
		y    func(sample) float64
		c    color.Color
	}{
		{"RSS", func(s sample) float64 { return s.RSSMB }, color.RGBA{R: 200, A: 255}},
		{"Go heap (alloc)", func(s sample) float64 { return s.HeapMB }, color.RGBA{B: 200, A: 255}},
		{"Go sys", func(s sample) float64 { return s.SysMB }, color.RGBA{G: 150, A: 255}},
	} {
		if err := addLine(mem, l.name, series(res.samples, l.y), l.c); err != nil {
			return err
		}
	}

	if idleTargetMB > 0 {
		xmax := math.Max(res.samples[len(res.samples)-1].T, (res.idle*2 + res.load).Seconds())
		target, err := plotter.NewLine(plotter.XYs{{X: 0, Y: idleTargetMB}, {X: xmax, Y: idleTargetMB}})
		if err != nil {
			return err
		}
		target.Color, target.Dashes = color.RGBA{R: 200, A: 255}, []vg.Length{vg.Points(2), vg.Points(2)}
		mem.Add(target)
		mem.Legend.Add(fmt.Sprintf("idle RSS target (%.0f MB)", idleTargetMB), target)
	}

	gor := plot.New()
	gor.X.Label.Text = "seconds"
	gor.Y.Label.Text = "goroutines"
	gor.Y.Min = 0
	gor.Legend.Top, gor.Legend.Left = true, false
	markPhases(gor, res)
	if err := addLine(gor, "goroutines", series(res.samples, func(s sample) float64 {
		if s.Goroutines < 0 {
			return math.NaN()
		}
		return float64(s.Goroutines)
	}), color.Black); err != nil {
		return err
	}
	xmax := math.Max(res.samples[len(res.samples)-1].T, (res.idle*2 + res.load).Seconds())
	var memMax, gorMax float64
	for _, s := range res.samples {
		memMax = math.Max(memMax, math.Max(s.RSSMB, idleTargetMB))
		if !math.IsNaN(s.SysMB) {
			memMax = math.Max(memMax, s.SysMB)
		}
		gorMax = math.Max(gorMax, float64(s.Goroutines))
	}
	// Headroom above the data for the legend and the phase names.
	mem.Y.Max, gor.Y.Max = memMax*1.5+1, gorMax*1.5+1
	for _, p := range []*plot.Plot{mem, gor} {
		p.X.Min, p.X.Max = 0, xmax
		labels, err := plotter.NewLabels(plotter.XYLabels{
			XYs: []plotter.XY{
				{X: res.idle.Seconds() / 2, Y: p.Y.Max * 0.78},
				{X: (res.idle + res.load/2).Seconds(), Y: p.Y.Max * 0.78},
				{X: (res.idle + res.load).Seconds() + res.idle.Seconds()/2, Y: p.Y.Max * 0.78},
			},
			Labels: []string{"idle", "load", "cool-down"},
		})
		if err != nil {
			return err
		}
		for i := range labels.TextStyle {
			labels.TextStyle[i].XAlign = draw.XCenter
		}
		p.Add(labels)
	}

	img := vgimg.New(vg.Points(900), vg.Points(600))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: vg.Millimeter * 3,
		PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align([][]*plot.Plot{{mem}, {gor}}, tiles, dc)
	mem.Draw(canvases[0][0])
	gor.Draw(canvases[1][0])

	f, err := os.Create(pngPath(dir))
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
