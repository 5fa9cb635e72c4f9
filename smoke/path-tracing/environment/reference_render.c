/* Reference renderer for the path-tracing smoke task (written for this project).
 * setup.py compiles it in a temporary folder outside the app folder and deletes it,
 * as Terminal-Bench deletes its renderer after rendering image.ppm.
 *
 * Scene: camera at the origin looking down -z; a red sphere; a checkerboard plane
 * at y = -1; a sun in direction (1,1,-1) with hard shadows; ambient 0.2; a sky
 * gradient from white at the horizon to light blue overhead.
 * Usage: reference_render OUT.ppm  (P3, 2400x1800). */
#include <math.h>
#include <stdio.h>

#define W 2400
#define H 1800

typedef struct { double x, y, z; } vec;

static vec v(double x, double y, double z) { vec r = {x, y, z}; return r; }
static vec add(vec a, vec b) { return v(a.x + b.x, a.y + b.y, a.z + b.z); }
static vec sub(vec a, vec b) { return v(a.x - b.x, a.y - b.y, a.z - b.z); }
static vec mul(vec a, double s) { return v(a.x * s, a.y * s, a.z * s); }
static double dot(vec a, vec b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
static vec norm(vec a) { return mul(a, 1 / sqrt(dot(a, a))); }

static const vec CENTER = {0, 0, -4};
static const double RADIUS = 1;
static const double PLANE_Y = -1;
static const double AMBIENT = 0.2;

/* Distance along ray o + t*d to the sphere, or -1. d is unit length. */
static double hit_sphere(vec o, vec d) {
    vec oc = sub(o, CENTER);
    double b = dot(oc, d), c = dot(oc, oc) - RADIUS * RADIUS, disc = b * b - c;
    if (disc < 0) return -1;
    double t = -b - sqrt(disc);
    return t > 1e-4 ? t : -1;
}

static double hit_plane(vec o, vec d) {
    if (d.y >= 0) return -1;
    double t = (PLANE_Y - o.y) / d.y;
    return t > 1e-4 ? t : -1;
}

static vec trace(vec o, vec d) {
    vec sun = norm(v(1, 1, -1));
    double ts = hit_sphere(o, d), tp = hit_plane(o, d);
    vec p, n, albedo;
    if (ts > 0 && (tp < 0 || ts < tp)) {
        p = add(o, mul(d, ts));
        n = norm(sub(p, CENTER));
        albedo = v(0.9, 0.1, 0.1);
    } else if (tp > 0) {
        p = add(o, mul(d, tp));
        n = v(0, 1, 0);
        int check = ((int)floor(p.x) + (int)floor(p.z)) & 1;
        albedo = check ? v(0.9, 0.9, 0.9) : v(0.15, 0.15, 0.15);
    } else {
        double s = 0.5 * (d.y + 1);
        return add(mul(v(1, 1, 1), 1 - s), mul(v(0.5, 0.7, 1.0), s));
    }
    double diffuse = dot(n, sun);
    if (diffuse < 0 || hit_sphere(add(p, mul(n, 1e-3)), sun) > 0) diffuse = 0;
    return mul(albedo, AMBIENT + (1 - AMBIENT) * diffuse);
}

int main(int argc, char **argv) {
    FILE *f = fopen(argc > 1 ? argv[1] : "image.ppm", "w");
    if (!f) return 1;
    fprintf(f, "P3\n%d %d\n255\n", W, H);
    double aspect = (double)W / H, scale = tan(M_PI / 6); /* 60 degree vertical fov */
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            double u = (2 * (x + 0.5) / W - 1) * aspect * scale;
            double w = (1 - 2 * (y + 0.5) / H) * scale;
            vec c = trace(v(0, 0, 0), norm(v(u, w, -1)));
            double rgb[3] = {c.x, c.y, c.z};
            for (int k = 0; k < 3; k++) {
                double q = rgb[k] < 0 ? 0 : rgb[k] > 1 ? 1 : rgb[k];
                fprintf(f, "%d ", (int)(q * 255 + 0.5));
            }
        }
        fputc('\n', f);
    }
    return fclose(f) != 0;
}
