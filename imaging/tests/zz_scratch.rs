mod common;
use common::*;
use tessera_imaging::*;
#[test]
fn scratch() {
    let mut out = Vec::new();
    {
    let mut encoder = png::Encoder::new(&mut out, 4, 4);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_animated(2, 0).unwrap();
    let mut w = encoder.write_header().unwrap();
    w.write_image_data(&[1u8; 48]).unwrap();
    w.write_image_data(&[2u8; 48]).unwrap();
    w.finish().unwrap();
    }
    let parts = chunks(&out);
    let show = |name: &str, parts: &[Chunk]| {
        let png = assemble(parts);
        println!("{name}: {:?}", process(&png, &Options::default()).map(|o| o.path));
        let mut g = parts.to_vec();
        for c in g.iter_mut() { if &c.kind == b"IHDR" { c.data[9] = 0; c.data[8]=8; } }
        println!("{name} gray: {:?}", process(&assemble(&g), &Options::default()).map(|o| o.path));
    };
    // acTL says 1 frame
    let mut p = parts.clone();
    p.iter_mut().find(|c| &c.kind == b"acTL").unwrap().data[..4].copy_from_slice(&1u32.to_be_bytes());
    show("actl1", &p);
    let mut p = parts.clone();
    p.iter_mut().find(|c| &c.kind == b"acTL").unwrap().data[..4].copy_from_slice(&3u32.to_be_bytes());
    show("actl3", &p);
    let p: Vec<Chunk> = parts.iter().filter(|c| &c.kind != b"acTL").cloned().collect();
    show("no actl", &p);
    let mut p = parts.clone();
    p.iter_mut().find(|c| &c.kind == b"acTL").unwrap().data[..4].copy_from_slice(&0u32.to_be_bytes());
    show("actl0", &p);
    let mut p = parts.clone();
    p.iter_mut().find(|c| &c.kind == b"acTL").unwrap().data[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    show("actlmax", &p);
    // fdAT seq wrong
    let mut p = parts.clone();
    p.iter_mut().find(|c| &c.kind == b"fdAT").unwrap().data[..4].copy_from_slice(&9u32.to_be_bytes());
    show("seq", &p);
    // indexed without PLTE
    let mut p = chunks(&encode(2,1,png::ColorType::Grayscale, png::BitDepth::Eight,&[0,1]));
    p[0].data[9] = 3;
    println!("noplte: {:?}", process(&assemble(&p), &Options::default()).map(|o| o.path));
    // adler flip
    let mut p = chunks(&encode(2,1,png::ColorType::Rgb, png::BitDepth::Eight,&[0,1,2,3,4,5]));
    let idat = p.iter_mut().find(|c| &c.kind == b"IDAT").unwrap();
    let n = idat.data.len(); idat.data[n-1] ^= 1;
    println!("adler: {:?}", process(&assemble(&p), &Options::default()).map(|o| o.path));
    // truncated zlib
    let mut p = chunks(&encode(20,20,png::ColorType::Rgb, png::BitDepth::Eight,&(0..1200).map(|i| (i*7) as u8).collect::<Vec<_>>()));
    let idat = p.iter_mut().find(|c| &c.kind == b"IDAT").unwrap();
    let n = idat.data.len(); idat.data.truncate(n/2);
    println!("trunc zlib: {:?}", process(&assemble(&p), &Options::default()).map(|o| o.path));
    // extra zlib data after stream end
    let mut p = chunks(&encode(2,1,png::ColorType::Rgb, png::BitDepth::Eight,&[0,1,2,3,4,5]));
    let idat = p.iter_mut().find(|c| &c.kind == b"IDAT").unwrap();
    idat.data.extend_from_slice(b"trailing garbage");
    println!("extra zlib: {:?}", process(&assemble(&p), &Options::default()).map(|o| o.path));
    // too much image data: zlib of more rows than needed
    let big = encode(2,2,png::ColorType::Rgb, png::BitDepth::Eight,&[7;12]);
    let mut p = chunks(&encode(2,1,png::ColorType::Rgb, png::BitDepth::Eight,&[0,1,2,3,4,5]));
    let bigidat = chunks(&big).into_iter().find(|c| &c.kind == b"IDAT").unwrap();
    *p.iter_mut().find(|c| &c.kind == b"IDAT").unwrap() = bigidat;
    println!("too much data: {:?}", process(&assemble(&p), &Options::default()).map(|o| o.path));
    // bad filter type
    let mut p = chunks(&encode(2,1,png::ColorType::Rgb, png::BitDepth::Eight,&[0,1,2,3,4,5]));
    // zlib stored block with filter byte 9
    let raw = [9u8,0,1,2,3,4,5];
    let mut z = vec![0x78, 0x01, 0x01, 7, 0, !7u8, 0xff];
    z.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32); for &x in &raw { a = (a + x as u32) % 65521; b = (b + a) % 65521; }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    p.iter_mut().find(|c| &c.kind == b"IDAT").unwrap().data = z;
    println!("bad filter: {:?}", process(&assemble(&p), &Options::default()).map(|o| o.path));
}
